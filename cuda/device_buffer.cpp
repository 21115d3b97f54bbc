#include "cuda/device_buffer.hpp"

#include <cstdio>
#include <utility>

#include "cuda/cuda_check.hpp"

namespace fresco::cuda {

namespace {
std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
  return buf;
}
}  // namespace

void* device_malloc(size_t bytes, const std::string& what) {
  void* p = nullptr;
  const cudaError_t rc = cudaMalloc(&p, bytes);
  if (rc == cudaSuccess) return p;
  cudaGetLastError();  // clear the error so later calls do not report it again
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaGetLastError();
  int device = -1;
  cudaGetDevice(&device);
  throw ApiError("CUDA device " + std::to_string(device) + ": cannot allocate " + std::to_string(bytes) +
                 " bytes (" + gib(bytes) + ") for " + what + ": " + cudaGetErrorString(rc) + " (" +
                 gib(free_bytes) + " free of " + gib(total_bytes) + ")");
}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : what_(std::move(other.what_)),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    what_ = std::move(other.what_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::release() noexcept {
  if (data_) cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

void* DeviceBuffer::reserve(size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_ && data_) return data_;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FRESCO_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  if (status != cudaStreamCaptureStatusNone)
    throw Error("internal error: the CUDA backend's " + what_ + " must grow to " + std::to_string(bytes) +
                " bytes during a graph capture; run the step once eagerly at this shape before "
                "capturing it");
  FRESCO_CUDA_CHECK(cudaDeviceSynchronize());  // queued work may still use the old block
  release();
  const size_t grown = bytes < 256 ? 256 : bytes;
  data_ = device_malloc(grown, "the CUDA backend's " + what_);
  bytes_ = grown;
  return data_;
}

}  // namespace fresco::cuda
