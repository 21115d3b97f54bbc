#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/h5_file.hpp"
#include "io/weights_file.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {
namespace {

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  throw InputError(where + " has dtype " + s + " (Fresco converts F32, F16 and BF16)");
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw InputError(path + " is not a safetensors file (shorter than its 8-byte header length)");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw IoError("cannot map " + path + ": " + std::strerror(errno));
  map_ = static_cast<const unsigned char*>(m);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];
  if (header_len > size_ - 8) throw InputError(path + ": header length exceeds the file (truncated?)");
  data_start_ = map_ + 8 + header_len;
  const size_t data_size = size_ - 8 - header_len;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(map_ + 8, map_ + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": the safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw InputError(path + ": the safetensors header is not a JSON object");
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = path + ":" + name;
    try {
      SafetensorsEntry e;
      e.dtype = parse_dtype(v.at("dtype").get<std::string>(), where);
      e.shape = v.at("shape").get<Shape>();
      const auto offsets = v.at("data_offsets").get<std::vector<size_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
        throw InputError(where + ": data offsets outside the file (truncated?)");
      e.begin = offsets[0];
      e.end = offsets[1];
      if (e.end - e.begin != size_t(shape_numel(e.shape)) * dtype_size(e.dtype))
        throw InputError(where + ": data size does not match shape " + shape_string(e.shape));
      entries_[name] = e;
    } catch (const nlohmann::json::exception& ex) {
      throw InputError(where + ": malformed header entry: " + ex.what());
    }
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
}

std::string convert_safetensors(const std::string& in, const std::string& out,
                                const std::string& model) {
  const SafetensorsFile st(in);
  // An autoencoder checkpoint (ae.safetensors) also holds the encoder, which Fresco does not
  // use: its tensors are left out when the preset is an autoencoder.
  auto kept = [](const std::string& preset, const std::string& name) {
    return !(is_vae_preset(preset) && name.starts_with("encoder."));
  };
  auto table_of = [&](const std::string& preset) {
    std::map<std::string, StoredTensorInfo> found;
    for (const auto& [name, e] : st.entries())
      if (kept(preset, name)) found[name] = {e.shape, e.dtype, dtype_name(e.dtype)};
    return found;
  };

  // Pick the preset: the one named, or the one whose weight table matches.
  std::string preset = model;
  if (model == "auto") {
    preset.clear();
    for (const auto& name : all_preset_names())
      if (validate_weight_table(name, preset_weight_specs(name), table_of(name)).empty()) preset = name;
    if (preset.empty())
      throw InputError(in + " matches no preset; name one with --model to see what differs");
  } else {
    const auto problems = validate_weight_table(model, preset_weight_specs(model), table_of(model));
    if (!problems.empty()) throw InputError(describe_weight_problems(in, model, problems));
  }

  h5::write_atomically(out, [&](h5::File& file) {
    file.write_attr("format", std::string(kWeightsFormat));
    file.write_attr("format_version", kWeightsFormatVersion);
    file.write_attr("model", preset);
    file.write_attr("source", in);
    for (const auto& [name, e] : st.entries())
      if (kept(preset, name)) file.write_bytes(checkpoint_key_to_h5(name), e.dtype, e.shape, st.data(e));
  });
  return preset;
}

}  // namespace fresco
