// The registry of model families (denoiser.hpp): FLUX.1's presets and the SDXL U-Net's.
#include "src/model/denoiser.hpp"

#include "src/model/flux_model.hpp"
#include "src/model/sdxl_unet.hpp"
#include "src/model/sampler.hpp"

namespace fresco {

DenoiserSpec flux_denoiser_spec(const FluxConfig& c) {
  DenoiserSpec s;
  s.name = c.name;
  s.family = "flux";
  s.attention = {c.depth + c.depth_single, c.heads, c.head_dim()};
  s.blocks = c.depth + c.depth_single;
  s.token_channels = c.in_channels;
  s.latent_channels = c.latent_channels();
  s.latent_patch = 2;
  s.default_steps = c.default_steps;
  s.default_guidance = c.default_guidance;
  s.step_flops = [c](int64_t txt, int64_t img) { return flux_step_flops(c, txt, img); };
  s.timesteps = [shift = c.time_shift](int steps, int64_t img) { return flux_timesteps(steps, img, shift); };
  return s;
}

DenoiserSpec denoiser_spec(const std::string& preset) {
  if (is_sdxl_preset(preset)) return sdxl_denoiser_spec(sdxl_preset(preset));
  return flux_denoiser_spec(flux_preset(preset));
}

std::unique_ptr<Denoiser> make_denoiser(const std::string& preset, ModelWeights weights, Backend& backend,
                                        std::unique_ptr<AttentionStrategy> attention, DType compute) {
  if (is_sdxl_preset(preset))
    return std::make_unique<SdxlUnet>(sdxl_preset(preset), std::move(weights), backend, std::move(attention), compute);
  return std::make_unique<FluxTransformer>(flux_preset(preset), std::move(weights), backend, std::move(attention),
                                           compute);
}

}  // namespace fresco
