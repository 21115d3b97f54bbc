// Weights files seen from the model: which preset a file is for, loading a preset's tensors
// onto a backend, random weights (converting a checkpoint: src/model/checkpoint_convert.hpp). The file formats
// themselves are io/weights_file.hpp and io/safetensors.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "io/weights_file.hpp"
#include "src/backend/backend.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/lora.hpp"

namespace fresco {

// "random:SEED" as a weights path (--weights random:SEED): the seed; nothing for a file path.
// InputError when the seed is not a non-negative integer.
std::optional<uint64_t> random_weights_seed(const std::string& path);

// The preset to run: `requested`, or the file's own when `requested` is "auto" (random weights
// need a named preset).
FluxConfig preset_for_weights(const std::string& path, const std::string& requested);

// Reads every tensor of a preset (transformer or autoencoder), validates names, shapes and
// dtypes against its table (all problems in one InputError) and places them on the backend's
// device. `as`: nothing keeps each tensor's stored dtype (a file may mix f32, bf16 and f16);
// a dtype (f32, bf16 or f16) converts every tensor to it on the host first (e.g. bf16 weights
// for a bf16 run of an f32 file).
// `path` "random:SEED" makes random_weights(preset, SEED, backend, as or f32) instead.
// `lora`: adapters merged into the tensors they touch as each is read, in f32, before `as`
// (src/model/lora.hpp); the weights' identity then includes the LoRA files and scales. Random
// weights take none (InputError: they are drawn on the device).
// An FP8 weights file (src/model/fp8_weights.hpp) is checked against its FP8 table and its
// scales by check_weight_scale; `fp8` says what becomes of its token linears: kept, the e4m3
// NAME.weight and f32 NAME.weight_scale placed as stored (for --dtype fp8, whose linears use
// them directly; `as` converts the other tensors only), or dequantized, NAME.weight = q * scale
// in `as` (f32 without) and no scales kept. It takes no LoRA (InputError).
enum class Fp8Linears { dequantize, keep };
ModelWeights load_weights(const std::string& path, const std::string& preset, Backend& backend,
                          std::optional<DType> as = std::nullopt, const LoraMerge* lora = nullptr,
                          Fp8Linears fp8 = Fp8Linears::dequantize);

// Whether `path` is an FP8 weights file (false for random:SEED).
bool is_fp8_weights_file(const std::string& path);

// `host` (f32, bf16 or f16) as `as`, converted on the host through f32, as load_weights does.
Tensor convert_on_host(const Tensor& host, DType as);

// A preset's random weights (the rules of write_random_weights, the same values as the file
// it writes for that seed, up to the device's logf/sinf ulps), drawn directly on the backend's
// device by fill_random in `dtype` (f32, bf16 or f16): a full-size model without a file.
ModelWeights random_weights(const std::string& preset, uint64_t seed, Backend& backend, DType dtype);

// Random weights for tests, demos and benchmarks, drawn from the counter-based RNG (a seed
// always gives the same file): Linear weights N(0, 0.02), convolution weights
// N(0, 1/sqrt(fan_in)) (so activations keep their scale through the decoder), biases
// N(0, 0.002), RMSNorm scales and GroupNorm weights 1, GroupNorm biases 0. Stored as `dtype`
// (f32, bf16 or f16). Published atomically.
void write_random_weights(const std::string& path, const std::string& preset, uint64_t seed,
                          DType dtype);

}  // namespace fresco
