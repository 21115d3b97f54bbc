// Reading safetensors files (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}}, then the raw data). Which preset a checkpoint is, how its
// names map to Fresco's and the writing of the weights file are src/model/checkpoint_convert.hpp's.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "io/tensor_table.hpp"
#include "src/core/tensor.hpp"

namespace fresco {

struct SafetensorsEntry {
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

// Fresco's key for a stored tensor name, or nothing to leave the tensor out (an autoencoder's
// encoder, the text encoders of a combined checkpoint, ...).
using CheckpointKeys = std::function<std::optional<std::string>(const std::string&)>;

// A memory-mapped safetensors file; the header is parsed and checked on open. What is not a
// safetensors file is named for what it is: a folder, the JSON index of a sharded checkpoint, an
// HDF5 file (InputError). Folders and sharded checkpoints are io/safetensors_set.hpp's.
// Dtypes: F32, F16, BF16 and F8_E4M3 (the last widened to bf16 by the converter).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const void* data(const SafetensorsEntry& e) const { return data_start_ + e.begin; }
  // The stored shape and dtype of every tensor, by its key under `keys` (the stored names
  // without one; tensors it leaves out are not listed).
  TensorTable table(const CheckpointKeys& keys = {}) const;

 private:
  void parse_header();  // fills entries_ from the mapped file
  std::string path_;
  size_t size_ = 0;
  const unsigned char* map_ = nullptr;
  const unsigned char* data_start_ = nullptr;
  std::map<std::string, SafetensorsEntry> entries_;
};

}  // namespace fresco
