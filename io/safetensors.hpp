// Reading safetensors checkpoints (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}}, then the raw data) and copying their tensors into
// Fresco's HDF5 weights format. Which preset a checkpoint is (and so which tensors to keep) is
// decided by src/model/weights_io.hpp (convert_safetensors).
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
// safetensors file is named for what it is: a folder (the diffusers layout is one), the JSON
// index of a sharded checkpoint, an HDF5 file (InputError).
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

// Writes the tensors of `st` that `keys` maps to a weights file for preset `model`, at their
// mapped keys, bytes and dtypes unchanged, with the checkpoint's path as the `source`
// attribute. Published atomically. The caller has checked the tensors against the preset.
void write_weights_from_safetensors(const SafetensorsFile& st, const std::string& out,
                                    const std::string& model, const CheckpointKeys& keys);

}  // namespace fresco
