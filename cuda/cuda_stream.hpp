// CUDA streams and events behind the engine's Stream/Event (src/core/exec.hpp): move-only
// owners of cudaStream_t / cudaEvent_t. C++20 (includes the core headers); not for .cu files.
#pragma once

#include <cuda_runtime_api.h>

#include "src/core/exec.hpp"

namespace fresco::cuda {

// A non-blocking stream of one device (no implicit ordering with the legacy default stream).
class CudaStream final : public Stream {
 public:
  CudaStream();  // on the current device
  ~CudaStream() override;
  CudaStream(CudaStream&& other) noexcept;
  CudaStream& operator=(CudaStream&& other) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  void* native() const override { return stream_; }
  cudaStream_t get() const { return stream_; }
  void synchronize() override;

 private:
  cudaStream_t stream_ = nullptr;
};

// An event without timing (the cheapest kind for ordering streams), or with timing for
// benchmarks (elapsed_ms).
class CudaEvent final : public Event {
 public:
  explicit CudaEvent(bool timing = false);
  ~CudaEvent() override;
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  cudaEvent_t get() const { return event_; }
  void record(Stream& stream) override;
  void wait_on(Stream& stream) override;
  void synchronize() override;
  bool query() override;
  // Both events made with timing, both recorded and reached.
  double elapsed_ms(const Event& start) const override;

 private:
  cudaEvent_t event_ = nullptr;
};

// The cudaStream_t behind an engine Stream (nullptr, the legacy default stream, for a host one).
inline cudaStream_t native_stream(const Stream& s) { return static_cast<cudaStream_t>(s.native()); }

}  // namespace fresco::cuda

namespace fresco::cuda {

// An instantiated CUDA graph (cudaGraphExec_t), made by capturing what `enqueue` queues on a
// stream. Move-only.
class CudaGraphExec {
 public:
  CudaGraphExec() = default;
  ~CudaGraphExec();
  CudaGraphExec(CudaGraphExec&& o) noexcept;
  CudaGraphExec& operator=(CudaGraphExec&& o) noexcept;
  CudaGraphExec(const CudaGraphExec&) = delete;
  CudaGraphExec& operator=(const CudaGraphExec&) = delete;

  // Captures the work `enqueue(stream)` queues (thread-local capture mode) and instantiates it.
  // Throws ApiError when the capture or the instantiation fails; the stream is then usable again.
  template <typename F>
  static CudaGraphExec capture(cudaStream_t stream, F&& enqueue) {
    begin(stream);
    try {
      enqueue(stream);
    } catch (...) {
      abandon(stream);
      throw;
    }
    return end(stream);
  }
  void launch(cudaStream_t stream) const;
  explicit operator bool() const { return exec_ != nullptr; }

 private:
  static void begin(cudaStream_t stream);
  static void abandon(cudaStream_t stream) noexcept;
  static CudaGraphExec end(cudaStream_t stream);
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace fresco::cuda
