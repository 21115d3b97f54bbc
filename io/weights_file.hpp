// The Fresco weights file (docs/file-formats.md): one dataset per tensor at the checkpoint key
// with '.' replaced by '/', PyTorch layout, float32/float16/bfloat16; root attributes
// format = "fresco-weights", format_version = 1, model = preset name.
#pragma once

#include <cstdint>
#include <string>

#include "src/backend/backend.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"

namespace fresco {

inline constexpr const char* kWeightsFormat = "fresco-weights";
inline constexpr int64_t kWeightsFormatVersion = 1;

// "double_blocks.0.img_attn.qkv.weight" <-> "/double_blocks/0/img_attn/qkv/weight"
std::string checkpoint_key_to_h5(const std::string& key);
std::string h5_to_checkpoint_key(const std::string& path);

// The preset a weights file was written for (checks the format attributes).
std::string weights_file_model(const std::string& path);
// The preset to run: `requested`, or the file's own when `requested` is "auto".
FluxConfig preset_for_weights(const std::string& path, const std::string& requested);

// Reads every tensor, validates names, shapes and dtypes against the preset (all problems in
// one InputError), converts to f32 and places them on the backend's device.
FluxWeights load_flux_weights(const std::string& path, const FluxConfig& config, Backend& backend);

// Random weights for tests, demos and benchmarks: Linear weights N(0, 0.02), biases
// N(0, 0.002), norm scales 1; drawn from the counter-based RNG, so a seed always gives the
// same file. Published atomically.
void write_random_weights(const std::string& path, const FluxConfig& config, uint64_t seed,
                          DType dtype);

}  // namespace fresco
