// DeviceBuffer: a move-only owner of one cudaMalloc allocation, used as grow-only scratch by the
// CUDA backend (GEMM accumulators, converted operands, cuBLASLt/cuDNN workspaces, statistics).
// It grows only outside graph capture; after a step has run once eagerly at a shape, no op
// allocates (CUDA graphs and the "a step allocates nothing" test rely on it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace fresco::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::string what) : what_(std::move(what)) {}
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // At least `bytes` of device memory. Growing waits for the device to be idle (the old block
  // may still be read by queued work), and throws when `stream` is being captured.
  void* reserve(size_t bytes, cudaStream_t stream);
  template <typename T>
  T* reserve_as(size_t count, cudaStream_t stream) {
    return static_cast<T*>(reserve(count * sizeof(T), stream));
  }
  void* get() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void release() noexcept;
  std::string what_ = "scratch";
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// cudaMalloc that throws ApiError naming the byte count (and the device's free memory) on
// failure.
void* device_malloc(size_t bytes, const std::string& what);

}  // namespace fresco::cuda
