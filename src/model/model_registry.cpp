#include "src/model/model_registry.hpp"

#include "src/core/error.hpp"
#include "src/model/qwen_config.hpp"
#include "src/model/sdxl_config.hpp"
#include "src/model/text_encoder_config.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {

std::vector<std::string> denoiser_preset_names() {
  auto names = flux_preset_names();
  for (const auto& n : qwen_preset_names()) names.push_back(n);
  return names;
}

FluxConfig denoiser_config(const std::string& preset) {
  if (is_qwen_preset(preset)) return qwen_cost_analog(qwen_preset(preset));
  for (const auto& n : flux_preset_names())
    if (n == preset) return flux_preset(preset);
  std::string known;
  for (const auto& n : denoiser_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("unknown model preset '" + preset + "' (known: " + known + ")");
}

std::vector<std::string> all_preset_names() {
  auto names = denoiser_preset_names();
  for (const auto& n : vae_preset_names()) names.push_back(n);
  for (const auto& n : t5_preset_names()) names.push_back(n);
  for (const auto& n : clip_preset_names()) names.push_back(n);
  for (const auto& n : sdxl_preset_names()) names.push_back(n);
  return names;
}

std::vector<WeightSpec> preset_weight_specs(const std::string& name) {
  if (is_vae_preset(name)) return vae_weight_specs(vae_preset(name));
  if (is_t5_preset(name)) return t5_weight_specs(t5_preset(name));
  if (is_clip_preset(name)) return clip_weight_specs(clip_preset(name));
  if (is_qwen_preset(name)) return qwen_weight_specs(qwen_preset(name));
  if (is_sdxl_preset(name)) return sdxl_weight_specs(sdxl_preset(name));
  for (const auto& n : flux_preset_names())
    if (n == name) return flux_weight_specs(flux_preset(name));
  std::string known;
  for (const auto& n : all_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("unknown model preset '" + name + "' (known: " + known + ")");
}

}  // namespace fresco
