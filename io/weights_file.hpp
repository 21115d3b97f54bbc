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

// Reads every tensor of a preset (transformer or autoencoder), validates names, shapes and
// dtypes against its table (all problems in one InputError), converts to f32 and places them
// on the backend's device.
ModelWeights load_weights(const std::string& path, const std::string& preset, Backend& backend);

// Random weights for tests, demos and benchmarks, drawn from the counter-based RNG (a seed
// always gives the same file): Linear weights N(0, 0.02), convolution weights
// N(0, 1/sqrt(fan_in)) (so activations keep their scale through the decoder), biases
// N(0, 0.002), RMSNorm scales and GroupNorm weights 1, GroupNorm biases 0. Published atomically.
void write_random_weights(const std::string& path, const std::string& preset, uint64_t seed,
                          DType dtype);

}  // namespace fresco
