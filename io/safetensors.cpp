#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "src/core/error.hpp"

namespace fresco {
namespace {

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  if (s == "F8_E4M3") return DType::e4m3;
  // Read so that a buffer such as CLIP's position ids can be recognised and left out; as a
  // weight, an integer tensor is refused by the weight table's dtype check.
  if (s == "I64") return DType::i64;
  throw InputError(where + " has dtype " + s + " (Fresco converts F32, F16, BF16 and F8_E4M3; I64 buffers are read to be left out)");
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path + " is a folder, not a safetensors file");
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError("cannot stat " + path + ": " + std::strerror(err));
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw InputError(path + " is not a safetensors file (shorter than its 8-byte header length)");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw IoError("cannot map " + path + ": " + std::strerror(errno));
  map_ = static_cast<const unsigned char*>(m);
  try {
    parse_header();
  } catch (...) {
    ::munmap(m, size_);  // the destructor does not run for a constructor that throws
    throw;
  }
}

void SafetensorsFile::parse_header() {
  const std::string& path = path_;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];
  if (header_len > size_ - 8) {
    // Not a safetensors file cut short but another kind of file, passed by mistake?
    const std::string_view bytes(reinterpret_cast<const char*>(map_), size_);
    if (bytes.starts_with("\x89HDF\r\n\x1a\n"))
      throw InputError(path + " is an HDF5 file, not a safetensors checkpoint (a Fresco weights file "
                              "needs no conversion: pass it to --weights or --vae; convert --dtype fp8 makes an FP8 weights file of it)");
    const auto first = bytes.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && bytes[first] == '{') {
      if (bytes.find("\"weight_map\"") != std::string_view::npos)
        throw InputError(path + " is the index of a sharded checkpoint (JSON), not a safetensors file; "
                                "its name must end in .safetensors.index.json to be read as one");
      throw InputError(path + " is a JSON file, not a safetensors file");
    }
    throw InputError(path + ": header length exceeds the file (truncated?)");
  }
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
      if (std::any_of(e.shape.begin(), e.shape.end(), [](int64_t d) { return d < 0; }))
        throw InputError(where + ": negative dimension in shape " + shape_string(e.shape));
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

TensorTable SafetensorsFile::table(const CheckpointKeys& keys) const {
  TensorTable found;
  for (const auto& [name, e] : entries_)
    if (const auto key = keys ? keys(name) : name) found[*key] = {e.shape, e.dtype, dtype_name(e.dtype)};
  return found;
}

}  // namespace fresco
