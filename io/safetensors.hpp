// Reading safetensors checkpoints (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}}, then the raw data) and converting them to Fresco's
// HDF5 weights format.
#pragma once

#include <map>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco {

struct SafetensorsEntry {
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

// A memory-mapped safetensors file; the header is parsed and checked on open.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const void* data(const SafetensorsEntry& e) const { return data_start_ + e.begin; }

 private:
  std::string path_;
  size_t size_ = 0;
  const unsigned char* map_ = nullptr;
  const unsigned char* data_start_ = nullptr;
  std::map<std::string, SafetensorsEntry> entries_;
};

// Converts a FLUX checkpoint to a weights file for `model` ("auto": the preset whose table
// the checkpoint matches). Tensors keep their dtype. Published atomically; returns the preset.
std::string convert_safetensors(const std::string& in, const std::string& out,
                                const std::string& model);

}  // namespace fresco
