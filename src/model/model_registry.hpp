// Every preset Fresco knows (transformer, autoencoder, text encoders), with its weight table: what the
// weights file reader, `init-weights` and `convert` work from.
#pragma once

#include <string>
#include <vector>

#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"

namespace fresco {

std::vector<std::string> all_preset_names();
// The transformer presets (FLUX and Qwen-Image).
std::vector<std::string> denoiser_preset_names();
// A transformer preset's FluxConfig: FLUX's own, or a Qwen-Image preset's cost analog
// (qwen_config.hpp: the performance model, memory estimate and prompt widths); InputError
// listing the transformer presets for an unknown name.
FluxConfig denoiser_config(const std::string& preset);
// The weight table of a preset; InputError listing the known names for an unknown one.
std::vector<WeightSpec> preset_weight_specs(const std::string& name);

}  // namespace fresco
