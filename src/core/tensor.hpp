// Tensor: a row-major array with a dtype, a shape, a device and a row stride.
//
// Storage is shared between copies of a Tensor (a handle, like a smart pointer) and owns memory
// of one device: it frees it with the release function its creator gave (std::free for host
// memory, cudaFree for the CUDA backend, nothing for a view into an Arena's block).
//
// Layout: the outermost dimension is the "row" dimension (a sequence tensor [L, C] or
// [L, H, D] has one row per token). Each row is dense (row_numel() elements); consecutive rows
// are row_stride() elements apart, which is row_numel() for a contiguous tensor and larger for
// a column view (cols()) of a wider matrix: q, k and v read in place from the fused qkv rows,
// the attention output written into the single block's concat buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fresco {

// f64 and i64 serve device-resident statistics and counters (GroupNorm sums, non-finite counts).
// e4m3: FP8 (src/core/float8.hpp), the optional wire format of q/k/v and stale K/V, always with
// per-row scales (Backend::quantize_rows); no op computes in it.
enum class DType { f32, bf16, f16, f64, i64, e4m3 };
enum class Device { cpu, cuda };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

// Memory of one device. The release function, given by whoever allocated it, knows the device.
class Storage {
 public:
  using Release = std::function<void(void*)>;
  Storage(Device device, void* data, size_t bytes, Release release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  // 64-byte aligned host memory, freed with std::free.
  static std::shared_ptr<Storage> host(size_t bytes);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Storages created so far by this process (every tensor allocation on any device; views and
  // arena hand-outs create none). Tests compare it around a denoising step: a step allocates
  // nothing.
  static uint64_t created();

 private:
  Device device_;
  size_t bytes_;
  void* data_;
  Release release_;
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised host memory (device tensors come from Backend::alloc or an Arena).
  Tensor(Shape shape, DType dtype = DType::f32);
  static Tensor zeros(Shape shape, DType dtype = DType::f32);  // host
  // A contiguous view of `storage` from `offset_bytes`.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape,
                             DType dtype);
  // Copies a float vector into a new f32 host tensor of the given shape.
  static Tensor from_floats(Shape shape, std::span<const float> values);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative counts from the end
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  // Payload bytes (numel * dtype size); the memory spanned is larger for a strided tensor.
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }
  // Elements per outer row (product of all but the first dimension; 1 for a vector).
  int64_t row_numel() const;
  // Elements from one outer row to the next (row_numel() when contiguous).
  int64_t row_stride() const { return row_stride_ ? row_stride_ : row_numel(); }
  bool contiguous() const { return row_stride() == row_numel() || (rank() > 0 && shape_[0] <= 1); }

  void* raw() const;
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }
  // Checked access to contiguous f32 host data.
  float* f32() const;

  // Rows [begin, begin+count) of the outermost dimension, sharing storage (keeps the stride).
  Tensor rows(int64_t begin, int64_t count) const;
  // Columns [begin, begin+count) of a matrix [L, C]: [L, count] with this tensor's row stride.
  Tensor cols(int64_t begin, int64_t count) const;
  // Same storage, new shape with the same element count. A strided tensor keeps its rows:
  // only the dimensions after the first may be regrouped ([L, H*D] <-> [L, H, D]).
  Tensor reshape(Shape shape) const;
  // Contiguous deep copy of a host tensor.
  Tensor clone() const;
  // f32 host copy of any float dtype (a copy for f32), contiguous.
  Tensor to_f32() const;
  // Conversion of an f32 host tensor to another float dtype (a copy for f32).
  Tensor to_dtype(DType dtype) const;
  std::vector<float> to_vector() const;

  std::string describe() const;  // "f32[3, 4] on cpu" (", row stride 12" when strided)

  // The memory block this tensor views and where in it the view starts (transports that
  // register or export whole allocations: CUDA IPC handles, NCCL windows, UCX memory maps).
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset_bytes() const { return offset_; }

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::f32;
  int64_t row_stride_ = 0;  // elements; 0 means contiguous (row_numel())
};

// One block of a device's memory handing out tensors by bump allocation, so a step's buffers
// come from one allocation and keep their addresses across steps and images (captured graphs
// and registered communication buffers need that).
//
// Sizing is a dry run: an Arena built without storage only counts, and take() returns shape-only
// (undefined) tensors. The owner runs its layout function once on such an arena, allocates
// used() bytes, and runs it again on the real one.
class Arena {
 public:
  Arena() = default;  // measuring
  explicit Arena(std::shared_ptr<Storage> block);
  Tensor take(const Shape& shape, DType dtype);
  bool measuring() const { return block_ == nullptr; }
  size_t used() const { return used_; }
  size_t capacity() const;
  // Starts handing out from the beginning again; tensors of the previous round must be dead.
  void reset() { used_ = 0; }

  static constexpr size_t kAlignment = 256;  // cuBLASLt/cuDNN friendly

 private:
  std::shared_ptr<Storage> block_;
  size_t used_ = 0;
};

}  // namespace fresco
