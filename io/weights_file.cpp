#include "io/weights_file.hpp"

#include <algorithm>
#include <map>

#include "io/h5_file.hpp"
#include "src/model/noise.hpp"

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

FluxWeights load_flux_weights(const std::string& path, const FluxConfig& config, Backend& backend) {
  const h5::File file = h5::File::open(path);
  check_format(file);
  const std::string model = file.read_string_attr("model");
  if (model != config.name)
    throw InputError(path + " holds weights of preset " + model + ", but the run uses " +
                     config.name);

  std::map<std::string, StoredTensorInfo> found;
  for (const std::string& ds : file.list_datasets()) {
    const h5::TypeId type = file.dataset_type(ds);
    found[h5_to_checkpoint_key(ds)] = {file.dataset_shape(ds), h5::stored_dtype(type.get()),
                                       h5::type_description(type.get())};
  }
  const auto problems = validate_weight_table(config, found);
  if (!problems.empty()) throw InputError(describe_weight_problems(path, config.name, problems));
  FluxWeights weights;
  for (const auto& spec : flux_weight_specs(config))
    weights.set(spec.name, backend.upload(file.read_raw(checkpoint_key_to_h5(spec.name)).to_f32()));
  return weights;
}

void write_random_weights(const std::string& path, const FluxConfig& config, uint64_t seed,
                          DType dtype) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write_attr("format", std::string(kWeightsFormat));
    file.write_attr("format_version", kWeightsFormatVersion);
    file.write_attr("model", config.name);
    const auto specs = flux_weight_specs(config);
    for (size_t i = 0; i < specs.size(); ++i) {
      const WeightSpec& spec = specs[i];
      Tensor t(spec.shape);
      if (spec.name.ends_with(".scale")) {
        std::fill(t.f32(), t.f32() + t.numel(), 1.0f);
      } else {
        fill_normal(t, seed, RandomStream::weights, uint32_t(i));
        const float std = spec.name.ends_with(".bias") ? 0.002f : 0.02f;
        std::transform(t.f32(), t.f32() + t.numel(), t.f32(), [std](float v) { return v * std; });
      }
      file.write(checkpoint_key_to_h5(spec.name), t.to_dtype(dtype));
    }
  });
}

}  // namespace fresco
