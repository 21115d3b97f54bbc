#include "src/model/weights_io.hpp"

#include <algorithm>
#include <cmath>

#include "io/safetensors.hpp"
#include "src/core/error.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/noise.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {

FluxConfig preset_for_weights(const std::string& path, const std::string& requested) {
  return flux_preset(requested == "auto" ? weights_file_model(path) : requested);
}

namespace {

bool is_weight_dtype(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }

// `host` (f32, bf16 or f16) as `as`, converted on the host through f32.
Tensor convert_on_host(const Tensor& host, DType as) {
  if (host.dtype() == as) return host;
  const Tensor f32 = host.to_f32();
  return as == DType::f32 ? f32 : f32.to_dtype(as);
}

}  // namespace

ModelWeights load_weights(const std::string& path, const std::string& preset, Backend& backend,
                          std::optional<DType> as) {
  FRESCO_ASSERT(!as || is_weight_dtype(*as),
                std::string("load_weights: weights are f32, bf16 or f16, not ") + dtype_name(*as));
  const WeightsFile file(path);
  if (file.model() != preset)
    throw InputError(path + " holds weights of preset " + file.model() + ", but the run uses " + preset);
  const auto specs = preset_weight_specs(preset);
  const auto problems = validate_weight_table(preset, specs, file.table());
  if (!problems.empty()) throw InputError(describe_weight_problems(path, preset, problems));
  ModelWeights weights;
  // upload() is asynchronous: a host tensor must live until its copy is done. The next tensor
  // is read from the file while the previous one is copied; then the host waits for that copy
  // and lets the previous host tensor go, so at most two are alive.
  Tensor in_flight;
  for (const auto& spec : specs) {
    Tensor host = file.read(spec.name);
    if (as) host = convert_on_host(host, *as);
    backend.synchronize();
    in_flight = host;
    weights.set(spec.name, backend.upload(in_flight));
  }
  backend.synchronize();
  return weights;
}

namespace {

// The random initialisation of one tensor of a weight table (see write_random_weights).
void fill_random(const WeightSpec& spec, const Tensor& t, uint64_t seed, uint32_t index) {
  float* p = t.f32();
  const int64_t n = t.numel();
  const bool norm = spec.name.find("norm") != std::string::npos;
  if (spec.name.ends_with(".scale") || (norm && spec.name.ends_with(".weight") && t.rank() == 1)) {
    std::fill(p, p + n, 1.0f);
    return;
  }
  if (norm && spec.name.ends_with(".bias")) {
    std::fill(p, p + n, 0.0f);
    return;
  }
  fill_normal(t, seed, RandomStream::weights, index);
  float std = 0.002f;  // biases
  if (spec.shape.size() == 2) std = 0.02f;
  if (spec.shape.size() == 4) std = float(1.0 / std::sqrt(double(shape_numel(spec.shape) / spec.shape[0])));
  std::transform(p, p + n, p, [std](float v) { return v * std; });
}

}  // namespace

void write_random_weights(const std::string& path, const std::string& preset, uint64_t seed,
                          DType dtype) {
  const auto specs = preset_weight_specs(preset);
  write_weights_file(path, preset, [&](WeightsWriter& w) {
    for (size_t i = 0; i < specs.size(); ++i) {
      Tensor t(specs[i].shape);
      fill_random(specs[i], t, seed, uint32_t(i));
      w.tensor(specs[i].name, t.to_dtype(dtype));
    }
  });
}

std::string convert_safetensors(const std::string& in, const std::string& out,
                                const std::string& model) {
  const SafetensorsFile st(in);
  // An autoencoder checkpoint (ae.safetensors) also holds the encoder, which Fresco does not
  // use: its tensors are left out when the preset is an autoencoder.
  auto keep_for = [](const std::string& preset) {
    return [vae = is_vae_preset(preset)](const std::string& name) {
      return !(vae && name.starts_with("encoder."));
    };
  };

  // Pick the preset: the one named, or the one whose weight table matches.
  std::string preset = model;
  if (model == "auto") {
    preset.clear();
    for (const auto& name : all_preset_names())
      if (validate_weight_table(name, preset_weight_specs(name), st.table(keep_for(name))).empty())
        preset = name;
    if (preset.empty())
      throw InputError(in + " matches no preset; name one with --model to see what differs");
  } else {
    const auto problems = validate_weight_table(model, preset_weight_specs(model), st.table(keep_for(model)));
    if (!problems.empty()) throw InputError(describe_weight_problems(in, model, problems));
  }
  write_weights_from_safetensors(st, out, preset, keep_for(preset));
  return preset;
}

}  // namespace fresco
