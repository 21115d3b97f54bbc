#include "io/weights_file.hpp"

#include <algorithm>
#include <map>

#include "io/h5_file.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/noise.hpp"

#include <cmath>

namespace fresco {

std::string checkpoint_key_to_h5(const std::string& key) {
  std::string p = "/" + key;
  std::replace(p.begin(), p.end(), '.', '/');
  return p;
}

std::string h5_to_checkpoint_key(const std::string& path) {
  std::string k = path.substr(path.starts_with('/') ? 1 : 0);
  std::replace(k.begin(), k.end(), '/', '.');
  return k;
}

namespace {

void check_format(const h5::File& file) {
  const std::string what = file.path() + " is not a Fresco weights file";
  if (!file.has_attr("format") || file.read_string_attr("format") != kWeightsFormat)
    throw InputError(what + " (root attribute format is not '" + std::string(kWeightsFormat) + "')");
  const int64_t version = file.read_int_attr("format_version");
  if (version != kWeightsFormatVersion)
    throw InputError(file.path() + " has weights format version " + std::to_string(version) +
                     "; this Fresco reads version " + std::to_string(kWeightsFormatVersion));
}

}  // namespace

std::string weights_file_model(const std::string& path) {
  const h5::File file = h5::File::open(path);
  check_format(file);
  return file.read_string_attr("model");
}

FluxConfig preset_for_weights(const std::string& path, const std::string& requested) {
  return flux_preset(requested == "auto" ? weights_file_model(path) : requested);
}

ModelWeights load_weights(const std::string& path, const std::string& preset, Backend& backend) {
  const h5::File file = h5::File::open(path);
  check_format(file);
  const std::string model = file.read_string_attr("model");
  if (model != preset)
    throw InputError(path + " holds weights of preset " + model + ", but the run uses " + preset);

  std::map<std::string, StoredTensorInfo> found;
  for (const std::string& ds : file.list_datasets()) {
    const h5::TypeId type = file.dataset_type(ds);
    found[h5_to_checkpoint_key(ds)] = {file.dataset_shape(ds), h5::stored_dtype(type.get()),
                                       h5::type_description(type.get())};
  }
  const auto specs = preset_weight_specs(preset);
  const auto problems = validate_weight_table(preset, specs, found);
  if (!problems.empty()) throw InputError(describe_weight_problems(path, preset, problems));
  ModelWeights weights;
  for (const auto& spec : specs)
    weights.set(spec.name, backend.upload(file.read_raw(checkpoint_key_to_h5(spec.name)).to_f32()));
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
  h5::write_atomically(path, [&](h5::File& file) {
    file.write_attr("format", std::string(kWeightsFormat));
    file.write_attr("format_version", kWeightsFormatVersion);
    file.write_attr("model", preset);
    for (size_t i = 0; i < specs.size(); ++i) {
      Tensor t(specs[i].shape);
      fill_random(specs[i], t, seed, uint32_t(i));
      file.write(checkpoint_key_to_h5(specs[i].name), t.to_dtype(dtype));
    }
  });
}

}  // namespace fresco
