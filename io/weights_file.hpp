// The Fresco weights file (docs/file-formats.md): one dataset per tensor at the checkpoint key
// with '.' replaced by '/', PyTorch layout, float32/float16/bfloat16; root attributes
// format = "fresco-weights", format_version = 1, model = preset name, source (optional).
// An FP8 weights file (root attribute quantization = kFp8Quantization) stores the token linears'
// weights as e4m3 (uint8 datasets marked dtype = float8_e4m3fn) beside their f32 scales
// NAME.weight_scale [N]: which tensors, and the scale rule, are src/model/fp8_weights.hpp's.
//
// The format only: which preset a file must match, and what is done with its tensors (loading
// them onto a backend, random initialisation), is src/model/weights_io.hpp's business.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "io/tensor_table.hpp"
#include "src/core/tensor.hpp"

namespace fresco {

namespace h5 {
class File;
}

inline constexpr const char* kWeightsFormat = "fresco-weights";
inline constexpr int64_t kWeightsFormatVersion = 1;
// The root attribute of an FP8 weights file and its one value.
inline constexpr const char* kQuantizationAttr = "quantization";
inline constexpr const char* kFp8Quantization = "e4m3 per output channel";

// "double_blocks.0.img_attn.qkv.weight" <-> "/double_blocks/0/img_attn/qkv/weight"
std::string checkpoint_key_to_h5(const std::string& key);
std::string h5_to_checkpoint_key(const std::string& path);

// An open weights file; the format attributes are checked on open (InputError otherwise).
class WeightsFile {
 public:
  explicit WeightsFile(const std::string& path);
  const std::string& path() const;
  // The preset the file was written for (root attribute model).
  const std::string& model() const { return model_; }
  // Whether the file is an FP8 weights file (root attribute quantization; InputError for a value
  // this Fresco does not know).
  bool fp8() const { return fp8_; }
  // Every tensor of the file, by checkpoint key, with its stored shape and dtype (no data read).
  TensorTable table() const;
  // One tensor in its stored dtype (f32, bf16, f16 or e4m3), as a host tensor.
  Tensor read(const std::string& key) const;

 private:
  std::shared_ptr<const h5::File> file_;
  std::string model_;
  bool fp8_ = false;
};

// The preset a weights file was written for (checks the format attributes).
std::string weights_file_model(const std::string& path);

// What write_weights_file's `fill` adds to the file: attributes, then tensors.
class WeightsWriter {
 public:
  void attribute(const std::string& name, const std::string& value);
  // A host tensor, stored in its dtype.
  void tensor(const std::string& key, const Tensor& host);
  // Raw bytes of a dtype and shape, stored unchanged (the converter's path).
  void tensor_bytes(const std::string& key, DType dtype, const Shape& shape, const void* bytes);

 private:
  friend void write_weights_file(const std::string&, const std::string&,
                                 const std::function<void(WeightsWriter&)>&);
  explicit WeightsWriter(h5::File& file) : file_(file) {}
  h5::File& file_;
};

// Writes a weights file for preset `model`: the format attributes and model, then whatever
// `fill` adds. Published atomically (nothing appears at `path` when `fill` throws).
void write_weights_file(const std::string& path, const std::string& model,
                        const std::function<void(WeightsWriter&)>& fill);

}  // namespace fresco
