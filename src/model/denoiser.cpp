// The registry of model families (denoiser.hpp): FLUX.1's, Qwen-Image's and the SDXL U-Net's presets.
#include "src/model/denoiser.hpp"

#include "src/model/flux_model.hpp"
#include "src/model/qwen_model.hpp"
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

std::vector<OpDesc> dit_forward_ops(DType compute, DType weight) {
  const DType f32 = DType::f32;
  auto op = [&](Op o, DType in, DType out, Epilogue e = Epilogue::none, bool strided = false) {
    return OpDesc{o, in, weight, out, f32, e, strided};
  };
  return {
      op(Op::copy, f32, compute),  // image tokens into the compute dtype
      op(Op::copy, compute, compute),
      op(Op::linear, compute, compute),
      op(Op::linear, compute, compute, Epilogue::none, true),
      op(Op::linear, compute, compute, Epilogue::gelu_tanh, true),
      op(Op::linear, compute, compute, Epilogue::gated_residual, true),
      op(Op::linear, compute, f32),  // the final projection writes the f32 velocity
      op(Op::norm_modulate, compute, compute),
      op(Op::rms_norm_rope, compute, compute, Epilogue::none, true),
      op(Op::attention, compute, compute, Epilogue::none, true),
      op(Op::silu, compute, compute),
      op(Op::timestep_embedding, f32, compute),
  };
}

DenoiserSpec qwen_denoiser_spec(const QwenConfig& c) {
  DenoiserSpec s;
  s.name = c.name;
  s.family = "qwen-image";
  s.attention = {c.layers, c.heads, c.head_dim()};
  s.blocks = c.layers;
  s.token_channels = c.in_channels;
  s.latent_channels = c.latent_channels();
  s.latent_patch = 2;
  s.default_steps = c.default_steps;
  s.default_guidance = 0.0;  // no guidance embedding; true CFG is not run yet
  s.step_flops = [c](int64_t txt, int64_t img) { return qwen_step_flops(c, txt, img); };
  s.timesteps = [](int steps, int64_t img) { return qwen_timesteps(steps, img); };
  return s;
}

DenoiserSpec denoiser_spec(const std::string& preset) {
  if (is_qwen_preset(preset)) return qwen_denoiser_spec(qwen_preset(preset));
  if (is_sdxl_preset(preset)) return sdxl_denoiser_spec(sdxl_preset(preset));
  return flux_denoiser_spec(flux_preset(preset));
}

std::unique_ptr<Denoiser> make_denoiser(const std::string& preset, ModelWeights weights, Backend& backend,
                                        std::unique_ptr<AttentionStrategy> attention, DType compute) {
  if (is_qwen_preset(preset))
    return std::make_unique<QwenImageTransformer>(qwen_preset(preset), std::move(weights), backend,
                                                  std::move(attention), compute);
  if (is_sdxl_preset(preset))
    return std::make_unique<SdxlUnet>(sdxl_preset(preset), std::move(weights), backend, std::move(attention), compute);
  return std::make_unique<FluxTransformer>(flux_preset(preset), std::move(weights), backend, std::move(attention),
                                           compute);
}

}  // namespace fresco
