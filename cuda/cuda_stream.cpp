#include "cuda/cuda_stream.hpp"

#include <utility>

#include "cuda/cuda_check.hpp"

namespace fresco::cuda {

CudaStream::CudaStream() { FRESCO_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }

CudaStream::~CudaStream() {
  if (stream_) cudaStreamDestroy(stream_);  // no throw from a destructor; work already queued completes
}

CudaStream::CudaStream(CudaStream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}

CudaStream& CudaStream::operator=(CudaStream&& other) noexcept {
  if (this != &other) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

void CudaStream::synchronize() { FRESCO_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

CudaEvent::CudaEvent(bool timing) {
  FRESCO_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

CudaEvent::~CudaEvent() {
  if (event_) cudaEventDestroy(event_);
}

CudaEvent::CudaEvent(CudaEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

void CudaEvent::record(Stream& stream) { FRESCO_CUDA_CHECK(cudaEventRecord(event_, native_stream(stream))); }

void CudaEvent::wait_on(Stream& stream) {
  FRESCO_CUDA_CHECK(cudaStreamWaitEvent(native_stream(stream), event_, 0));
}

void CudaEvent::synchronize() { FRESCO_CUDA_CHECK(cudaEventSynchronize(event_)); }

bool CudaEvent::query() {
  const cudaError_t rc = cudaEventQuery(event_);
  if (rc == cudaErrorNotReady) return false;
  FRESCO_CUDA_CHECK(rc);
  return true;
}

double CudaEvent::elapsed_ms(const Event& start) const {
  float ms = 0;
  FRESCO_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<const CudaEvent&>(start).event_, event_));
  return double(ms);
}

}  // namespace fresco::cuda

namespace fresco::cuda {

CudaGraphExec::~CudaGraphExec() {
  if (exec_) cudaGraphExecDestroy(exec_);
}
CudaGraphExec::CudaGraphExec(CudaGraphExec&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
CudaGraphExec& CudaGraphExec::operator=(CudaGraphExec&& o) noexcept {
  if (this != &o) {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}

void CudaGraphExec::begin(cudaStream_t stream) {
  FRESCO_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
}

void CudaGraphExec::abandon(cudaStream_t stream) noexcept {
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

CudaGraphExec CudaGraphExec::end(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t rc = cudaStreamEndCapture(stream, &graph);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    FRESCO_CUDA_CHECK(rc);
  }
  CudaGraphExec g;
  const cudaError_t irc = cudaGraphInstantiate(&g.exec_, graph, 0);
  cudaGraphDestroy(graph);
  FRESCO_CUDA_CHECK(irc);
  return g;
}

void CudaGraphExec::launch(cudaStream_t stream) const { FRESCO_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }

}  // namespace fresco::cuda
