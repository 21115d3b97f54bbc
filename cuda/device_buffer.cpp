#include "cuda/device_buffer.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <vector>
#include <utility>

#include "cuda/cuda_check.hpp"

namespace fresco::cuda {

namespace {
// The blocks replaced while a graph may point at them, and how many graphs hold them.
std::atomic<uint64_t> g_allocations{0};
std::mutex g_retired_mutex;
int g_holds = 0;
std::vector<DeviceAllocation> g_retired;

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

DeviceAllocation::DeviceAllocation(size_t bytes, const std::string& what)
    : data_(bytes ? device_malloc(bytes, what) : nullptr), bytes_(bytes) {}

DeviceAllocation::~DeviceAllocation() {
  if (data_) cudaFree(data_);  // unchecked: a destructor reports nothing
}

DeviceAllocation::DeviceAllocation(DeviceAllocation&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceAllocation& DeviceAllocation::operator=(DeviceAllocation&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void* DeviceBuffer::reserve(size_t bytes, cudaStream_t stream) {
  if (bytes <= block_.size() && block_.get()) return block_.get();
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FRESCO_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  if (status != cudaStreamCaptureStatusNone)
    throw Error("internal error: the CUDA backend's " + what_ + " must grow to " + std::to_string(bytes) +
                " bytes during a graph capture; run the step once eagerly at this shape before "
                "capturing it");
  FRESCO_CUDA_CHECK(cudaDeviceSynchronize());  // queued work may still use the old block
  {
    const std::lock_guard<std::mutex> lock(g_retired_mutex);
    if (g_holds > 0 && block_.get()) g_retired.push_back(std::move(block_));  // a live graph may point at it
  }
  block_ = DeviceAllocation();  // freed before the larger one is allocated
  block_ = DeviceAllocation(bytes < 256 ? 256 : bytes, "the CUDA backend's " + what_);
  ++g_allocations;
  return block_.get();
}

uint64_t DeviceBuffer::allocations() { return g_allocations.load(); }

DeviceBuffer::Hold::Hold() {
  const std::lock_guard<std::mutex> lock(g_retired_mutex);
  ++g_holds;
}

DeviceBuffer::Hold::~Hold() {
  std::vector<DeviceAllocation> released;  // freed outside the lock
  {
    const std::lock_guard<std::mutex> lock(g_retired_mutex);
    if (--g_holds == 0) released.swap(g_retired);
  }
}

}  // namespace fresco::cuda
