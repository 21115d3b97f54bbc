// FP8 weights files (docs/file-formats.md "FP8 weights files"): a FLUX preset's token linears'
// weights stored as e4m3 with one f32 scale per output channel, every other tensor as it was.
// The quantization is the one --dtype fp8 applies at set-up to a bf16 file (FluxTransformer::
// use_fp8_linears): the weight as bf16, then Backend::quantize_rows of the CPU backend, so an
// fp8 forward from the file equals one from the file it was made from, bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/weights_file.hpp"
#include "src/backend/backend.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"

namespace fresco {

// A token linear NAME's scale tensor: NAME.weight_scale beside NAME.weight.
inline constexpr const char* kWeightScaleSuffix = ".weight_scale";

// Whether `preset` is a FLUX transformer's (the presets with token linears).
bool has_token_linears(const std::string& preset);

// The weight table of preset `preset` as an FP8 file holds it: each token linear's NAME.weight
// required e4m3 [N, K] and followed by NAME.weight_scale, f32 [N]; every other tensor as in
// the preset's table. InputError naming `path` for a preset that is not a FLUX transformer's.
std::vector<WeightSpec> fp8_file_weight_specs(const std::string& preset, const std::string& path);

// A token linear's weight quantized per output channel (host tensors).
struct QuantizedWeight {
  Tensor q;      // [N, K] e4m3
  Tensor scale;  // [N] f32: row n stands for q[n] * scale[n]
};
// `weight` [N, K] (host; f32, bf16 or f16) rounded to bf16, the weight dtype of --dtype fp8, and
// quantized by `cpu`'s quantize_rows (a CPU backend: the reference the GPU kernel matches).
QuantizedWeight quantize_weight(const Tensor& weight, Backend& cpu);

// q * scale row by row, in `dtype` (rounded once): the weights an FP8 file's linear stands for,
// by `cpu`'s dequantize_rows. q: [N, K] e4m3, scale: [N] f32 (host) -> [N, K] host.
Tensor dequantize_weight(const Tensor& q, const Tensor& scale, DType dtype, Backend& cpu);

// An FP8 file's scale tensor `name` checked: shape [rows], every value finite and > 0;
// otherwise an InputError naming the tensor, the file `path` and the first bad channel.
void check_weight_scale(const Tensor& scale, int64_t rows, const std::string& name, const std::string& path);

// Writes a FLUX preset's tensors as an FP8 file: marks the file (root attribute quantization)
// on construction; tensor() writes a token linear's weight as NAME.weight e4m3 and
// NAME.weight_scale (quantize_weight), every other tensor unchanged. Give it the tensors in
// table order.
class Fp8WeightsWriter {
 public:
  Fp8WeightsWriter(WeightsWriter& out, const FluxConfig& config);
  ~Fp8WeightsWriter();
  void tensor(const std::string& name, const Tensor& host);
  // The token linears quantized so far.
  int64_t quantized() const { return quantized_; }

 private:
  WeightsWriter& out_;
  std::set<std::string> linear_weights_;  // the token linears' "NAME.weight"
  std::unique_ptr<Backend> cpu_;
  int64_t quantized_ = 0;
};

// `fresco convert --dtype fp8 IN.h5 OUT.h5`: the Fresco weights file `in` of a FLUX preset (not
// itself an FP8 file; validated against its preset's table) written to `out` as an FP8 file.
// Published atomically. Returns the preset and the linears quantized.
struct Fp8Conversion {
  std::string preset;
  int64_t quantized = 0;
};
Fp8Conversion write_fp8_weights_file(const std::string& in, const std::string& out);

}  // namespace fresco
