#include "src/model/fp8_weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "src/core/digest.hpp"
#include "src/core/error.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {

bool has_token_linears(const std::string& preset) {
  const auto flux = flux_preset_names();
  return std::find(flux.begin(), flux.end(), preset) != flux.end();
}

std::vector<WeightSpec> fp8_file_weight_specs(const std::string& preset, const std::string& path) {
  require_input(has_token_linears(preset),
                path + " is an FP8 weights file of preset " + preset +
                    ", which has no token linears: FP8 weights files are for FLUX transformer presets");
  const FluxConfig config = flux_preset(preset);
  std::set<std::string> linears;
  for (const std::string& name : flux_token_linear_names(config)) linears.insert(name + ".weight");
  std::vector<WeightSpec> specs;
  for (WeightSpec spec : flux_weight_specs(config)) {
    if (!linears.count(spec.name)) {
      specs.push_back(std::move(spec));
      continue;
    }
    const std::string stem = spec.name.substr(0, spec.name.size() - 7);  // less ".weight"
    const int64_t rows = spec.shape[0];
    specs.push_back({spec.name, spec.shape, DType::e4m3});
    specs.push_back({stem + kWeightScaleSuffix, {rows}, DType::f32});
  }
  return specs;
}

QuantizedWeight quantize_weight(const Tensor& weight, Backend& cpu) {
  FRESCO_ASSERT(weight.rank() == 2 && weight.device() == Device::cpu, "quantize_weight: " + weight.describe());
  // The runtime quantizes the weights it loaded for --dtype fp8, which are bf16 (the compute dtype).
  const Tensor rounded = convert_on_host(weight, DType::bf16);  // [N, K]
  QuantizedWeight out{Tensor(weight.shape(), DType::e4m3), Tensor({weight.dim(0)}, DType::f32)};
  cpu.quantize_rows(rounded, out.q, out.scale);
  cpu.synchronize();
  return out;
}

Tensor dequantize_weight(const Tensor& q, const Tensor& scale, DType dtype, Backend& cpu) {
  Tensor out(q.shape(), dtype);  // [N, K]
  cpu.dequantize_rows(q, scale, out);
  cpu.synchronize();
  return out;
}

void check_weight_scale(const Tensor& scale, int64_t rows, const std::string& name, const std::string& path) {
  const std::string what = path + ": " + name;
  require_input(scale.dtype() == DType::f32 && scale.rank() == 1 && scale.dim(0) == rows,
                what + " is " + scale.describe() + "; an FP8 weights file holds one f32 scale per output channel, [" +
                    std::to_string(rows) + "]");
  const Tensor dense = scale.contiguous() ? scale : scale.clone();
  const float* s = dense.data<float>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < rows; ++i)
    if (!(std::isfinite(s[i]) && s[i] > 0)) {
      ++bad;
      if (first < 0) first = i;
    }
  if (bad == 0) return;
  char value[32];
  std::snprintf(value, sizeof value, "%g", double(s[first]));
  throw InputError(what + ": " + std::to_string(bad) + " of " + std::to_string(rows) +
                   " scales are not finite and > 0 (channel " + std::to_string(first) + " is " + value +
                   "); the file is damaged or was not written by `fresco convert --dtype fp8`");
}

Fp8WeightsWriter::Fp8WeightsWriter(WeightsWriter& out, const FluxConfig& config)
    : out_(out), cpu_(make_cpu_backend()) {
  for (const std::string& name : flux_token_linear_names(config)) linear_weights_.insert(name + ".weight");
  out_.attribute(kQuantizationAttr, kFp8Quantization);
}

Fp8WeightsWriter::~Fp8WeightsWriter() = default;

void Fp8WeightsWriter::tensor(const std::string& name, const Tensor& host) {
  if (!linear_weights_.count(name)) {
    out_.tensor(name, host);
    return;
  }
  // A non-finite weight would give a NaN scale, which loading refuses as damage: name it here.
  if (const int64_t bad = count_nonfinite_host(host))
    throw InputError(name + " has " + std::to_string(bad) + " non-finite values (NaN or Inf): it cannot be quantized");
  const QuantizedWeight w = quantize_weight(host, *cpu_);
  out_.tensor(name, w.q);
  out_.tensor(name.substr(0, name.size() - 7) + kWeightScaleSuffix, w.scale);
  ++quantized_;
}

Fp8Conversion write_fp8_weights_file(const std::string& in, const std::string& out) {
  const WeightsFile file(in);
  require_input(!file.fp8(), in + " is already an FP8 weights file");
  const std::string preset = file.model();
  require_input(has_token_linears(preset),
                in + " holds weights of preset " + preset + "; FP8 weights files are for FLUX transformer presets");
  const auto specs = preset_weight_specs(preset);
  const auto problems = validate_weight_table(preset, specs, file.table());
  if (!problems.empty()) throw InputError(describe_weight_problems(in, preset, problems));
  Fp8Conversion done{preset, 0};
  write_weights_file(out, preset, [&](WeightsWriter& w) {
    w.attribute("source", in);
    Fp8WeightsWriter fp8(w, flux_preset(preset));
    for (const WeightSpec& spec : specs) fp8.tensor(spec.name, file.read(spec.name));
    done.quantized = fp8.quantized();
  });
  return done;
}

}  // namespace fresco
