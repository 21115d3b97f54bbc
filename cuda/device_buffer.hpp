// Owners of device memory allocated with cudaMalloc:
//   DeviceAllocation  one block of a fixed size (signal words, logs: anything allocated once);
//   DeviceBuffer      grow-only scratch of the CUDA backend (GEMM accumulators, converted
//                     operands, cuBLASLt/cuDNN workspaces, statistics), one DeviceAllocation that
//                     is replaced when it must grow. It grows only outside graph capture; after a
//                     step has run once eagerly at a shape, no op allocates (CUDA graphs and the
//                     "a step allocates nothing" test rely on it).
// Both are move-only and free their block in the destructor, so a constructor that throws after
// allocating leaks nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace fresco::cuda {

class DeviceAllocation {
 public:
  DeviceAllocation() = default;
  // `bytes` of device memory (uninitialised); throws ApiError naming `what` on failure.
  DeviceAllocation(size_t bytes, const std::string& what);
  ~DeviceAllocation();
  DeviceAllocation(DeviceAllocation&& other) noexcept;
  DeviceAllocation& operator=(DeviceAllocation&& other) noexcept;
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;

  void* get() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::string what) : what_(std::move(what)) {}

  // At least `bytes` of device memory. Growing waits for the device to be idle (the old block
  // may still be read by queued work), and throws when `stream` is being captured.
  void* reserve(size_t bytes, cudaStream_t stream);
  template <typename T>
  T* reserve_as(size_t count, cudaStream_t stream) {
    return static_cast<T*>(reserve(count * sizeof(T), stream));
  }
  void* get() const { return block_.get(); }
  size_t size() const { return block_.size(); }

  // Process-wide count of the blocks any DeviceBuffer has allocated: a captured step may point
  // at scratch, so a graph captured under another count may point at a replaced block
  // (Backend::allocation_epoch).
  static uint64_t allocations();

  // While a Hold lives (one per captured step graph), a block that a DeviceBuffer replaces is
  // kept instead of freed, so a graph that still points at it never reads freed memory; the
  // kept blocks are freed when the last Hold goes.
  class Hold {
   public:
    Hold();
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
  };

 private:
  std::string what_ = "scratch";
  DeviceAllocation block_;
};

// cudaMalloc that throws ApiError naming the byte count (and the device's free memory) on
// failure.
void* device_malloc(size_t bytes, const std::string& what);

}  // namespace fresco::cuda
