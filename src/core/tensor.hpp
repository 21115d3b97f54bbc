// Tensor: a dense, row-major, contiguous array with a dtype, a shape and a device.
// Storage is shared between copies of a Tensor (a handle, like a smart pointer); `clone`
// copies the data. Views are row ranges of the outermost dimension, which is how sequence
// shards and token slices are taken without copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fresco {

enum class DType { f32, bf16, f16 };
enum class Device { cpu, cuda };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

// Raw memory of a tensor. The deleter knows the device; CPU memory is 64-byte aligned.
class Storage {
 public:
  Storage(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t bytes_;
  void* data_;
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates uninitialised memory on the CPU (other devices allocate through their backend).
  Tensor(Shape shape, DType dtype = DType::f32);
  static Tensor zeros(Shape shape, DType dtype = DType::f32);
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape,
                             DType dtype);
  // Copies a float vector into a new f32 CPU tensor of the given shape.
  static Tensor from_floats(Shape shape, std::span<const float> values);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative counts from the end
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }
  // Elements per outer row (product of all but the first dimension).
  int64_t row_numel() const;

  void* raw() const;
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }
  // Checked access to f32 CPU data.
  float* f32() const;

  // Rows [begin, begin+count) of the outermost dimension, sharing storage.
  Tensor rows(int64_t begin, int64_t count) const;
  // Same storage, new shape with the same element count.
  Tensor reshape(Shape shape) const;
  // Deep copy (same device).
  Tensor clone() const;
  // f32 CPU copy of any dtype (identity copy for f32).
  Tensor to_f32() const;
  // Conversion of an f32 CPU tensor to bf16 or f16 (or a copy for f32).
  Tensor to_dtype(DType dtype) const;
  std::vector<float> to_vector() const;

  std::string describe() const;  // "f32[3, 4] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::f32;
};

}  // namespace fresco
