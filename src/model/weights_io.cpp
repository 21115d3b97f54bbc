#include "src/model/weights_io.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "src/core/digest.hpp"
#include "src/core/error.hpp"
#include "src/model/fp8_weights.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/noise.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {

std::optional<uint64_t> random_weights_seed(const std::string& path) {
  if (!path.starts_with("random:")) return std::nullopt;
  const std::string digits = path.substr(7);
  require_input(!digits.empty() && digits.size() <= 19 &&
                    digits.find_first_not_of("0123456789") == std::string::npos,
                "--weights " + path + ": expected random:SEED with SEED a non-negative integer");
  return uint64_t(std::stoull(digits));
}

FluxConfig preset_for_weights(const std::string& path, const std::string& requested) {
  if (random_weights_seed(path)) {
    require_input(requested != "auto", "--weights " + path + " needs --model to name the preset (e.g. flux-dev)");
    return denoiser_config(requested);
  }
  if (requested != "auto") return denoiser_config(requested);
  const std::string model = weights_file_model(path);
  const auto names = denoiser_preset_names();
  if (std::find(names.begin(), names.end(), model) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw InputError(path + " has model attribute '" + model + "', which is not a transformer preset (known: " +
                     known + ")");
  }
  return denoiser_config(model);
}

namespace {

bool is_weight_dtype(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }

}  // namespace

Tensor convert_on_host(const Tensor& host, DType as) {
  if (host.dtype() == as) return host;
  const Tensor f32 = host.to_f32();
  return as == DType::f32 ? f32 : f32.to_dtype(as);
}

bool is_fp8_weights_file(const std::string& path) { return !random_weights_seed(path) && WeightsFile(path).fp8(); }

ModelWeights load_weights(const std::string& path, const std::string& preset, Backend& backend,
                          std::optional<DType> as, const LoraMerge* lora, Fp8Linears fp8) {
  FRESCO_ASSERT(!as || is_weight_dtype(*as),
                std::string("load_weights: weights are f32, bf16 or f16, not ") + dtype_name(*as));
  if (const auto seed = random_weights_seed(path)) {
    require_input(!lora, "--lora needs a weights file: --weights " + path +
                             " draws random weights on the device, where no LoRA is merged");
    return random_weights(preset, *seed, backend, as.value_or(DType::f32));
  }
  const WeightsFile file(path);
  if (file.model() != preset)
    throw InputError(path + " holds weights of preset " + file.model() + ", but the run uses " + preset);
  require_input(!file.fp8() || !lora, "--lora needs bf16 (or f32) weights: " + path +
                                          " is an FP8 weights file; merge into the file it was made from");
  const auto specs = file.fp8() ? fp8_file_weight_specs(preset, path) : preset_weight_specs(preset);
  const auto problems = validate_weight_table(preset, specs, file.table());
  if (!problems.empty()) throw InputError(describe_weight_problems(path, preset, problems));
  const bool keep_fp8 = fp8 == Fp8Linears::keep;
  std::unique_ptr<Backend> cpu;  // dequantizes an FP8 file's linears (Fp8Linears::dequantize)
  ModelWeights weights;
  // The identity of the weights for resume records: every tensor's name, dtype, shape and
  // bytes as stored (before any conversion), so a copy of the file is the same weights.
  Digest identity;
  identity.add(preset);
  std::vector<std::string> non_finite;  // "name (N values)", reported all at once
  // upload() is asynchronous: a host tensor must live until its copy is done. The next tensor
  // is read from the file while the previous one is copied; then the host waits for that copy
  // and lets the previous host tensor go, so at most two are alive.
  Tensor in_flight;
  for (const auto& spec : specs) {
    Tensor host = file.read(spec.name);
    identity.add(spec.name).tensor(host);
    const bool scale = file.fp8() && spec.name.ends_with(kWeightScaleSuffix);  // [N] f32
    if (scale) {
      check_weight_scale(host, spec.shape[0], spec.name, path);
      if (!keep_fp8) continue;  // applied to its weight, read before it
    }
    if (host.dtype() == DType::e4m3 && !keep_fp8) {
      const std::string scale_name = spec.name.substr(0, spec.name.size() - 7) + kWeightScaleSuffix;
      const Tensor scales = file.read(scale_name);  // [N] f32
      check_weight_scale(scales, spec.shape[0], scale_name, path);
      if (!cpu) cpu = make_cpu_backend();
      host = dequantize_weight(host, scales, as.value_or(DType::f32), *cpu);
    }
    if (lora) host = lora->apply(spec.name, host);
    if (const int64_t bad = count_nonfinite_host(host))
      non_finite.push_back(spec.name + " (" + std::to_string(bad) + " of " +
                           std::to_string(host.numel()) + " values)");
    if (!non_finite.empty()) continue;  // the run will not start: no need to upload
    if (as && !scale && host.dtype() != DType::e4m3) host = convert_on_host(host, *as);
    backend.synchronize();
    in_flight = host;
    weights.set(spec.name, backend.upload(in_flight));
  }
  backend.synchronize();
  if (!non_finite.empty()) {
    std::string msg = path + ": non-finite values (NaN or Inf) in " + std::to_string(non_finite.size()) +
                      " tensor(s):";
    for (const std::string& n : non_finite) msg += "\n  " + n;
    throw InputError(msg);
  }
  if (lora) identity.add(lora->identity());
  weights.set_identity(identity.hex());
  return weights;
}

namespace {

// The random initialisation of one tensor of a weight table (see write_random_weights):
// element i = mean + std * counter_normal(seed, RandomStream::weights, tensor index, i), or
// the constant mean where std is 0. The one rule for files and for weights made on a device.
struct WeightInit {
  float mean = 0.0f, std = 0.0f;
};
WeightInit weight_init(const WeightSpec& spec) {
  const bool norm = spec.name.find("norm") != std::string::npos;
  if (spec.name.ends_with(".scale") || (norm && spec.name.ends_with(".weight") && spec.shape.size() == 1))
    return {1.0f, 0.0f};
  if (norm && spec.name.ends_with(".bias")) return {0.0f, 0.0f};
  float std = 0.002f;  // biases
  if (spec.shape.size() == 2) std = 0.02f;
  if (spec.shape.size() == 4) std = float(1.0 / std::sqrt(double(shape_numel(spec.shape) / spec.shape[0])));
  return {0.0f, std};
}

// Tensor `index` of a weight table, drawn by `backend`'s fill_random into `t` (any float dtype,
// rounded once).
void fill_random(Backend& backend, const WeightSpec& spec, const Tensor& t, uint64_t seed, uint32_t index) {
  const WeightInit init = weight_init(spec);
  backend.fill_random(seed, uint32_t(RandomStream::weights), index, init.mean, init.std, t);
}

}  // namespace

ModelWeights random_weights(const std::string& preset, uint64_t seed, Backend& backend, DType dtype) {
  FRESCO_ASSERT(is_weight_dtype(dtype), std::string("random_weights: weights are f32, bf16 or f16, not ") +
                                            dtype_name(dtype));
  const auto specs = preset_weight_specs(preset);
  ModelWeights weights;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor t = backend.alloc(specs[i].shape, dtype);
    fill_random(backend, specs[i], t, seed, uint32_t(i));
    weights.set(specs[i].name, t);
  }
  backend.synchronize();
  // Identity for resume records: the generator, not the values.
  weights.set_identity("random:" + std::to_string(seed) + ":" + preset + ":" + dtype_name(dtype));
  return weights;
}

void write_random_weights(const std::string& path, const std::string& preset, uint64_t seed,
                          DType dtype) {
  const auto specs = preset_weight_specs(preset);
  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  write_weights_file(path, preset, [&](WeightsWriter& w) {
    for (size_t i = 0; i < specs.size(); ++i) {
      Tensor t(specs[i].shape);
      fill_random(*cpu, specs[i], t, seed, uint32_t(i));
      w.tensor(specs[i].name, t.to_dtype(dtype));
    }
  });
}

}  // namespace fresco
