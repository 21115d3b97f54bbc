// The execution model: streams and events (CUDA's semantics, trivial on the host).
//
// A Backend enqueues every op on its compute stream. Work that must overlap (communication, a
// side computation) runs on other streams, and every hand-over between streams is an explicit
// ordering point: the producer records an event on its stream, the consumer's stream waits on
// it. A transport that needs the host (MPI on host-staged buffers) synchronizes the stream
// instead. On the CPU every op has completed when it returns, so these are no-ops there; the
// calls are still made at the same points, which is what keeps the CPU path a faithful model
// of the GPU one.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace fresco {

// An in-order queue of device work. Move-only owner of the native handle (cudaStream_t).
class Stream {
 public:
  virtual ~Stream() = default;
  // The native handle (cudaStream_t); nullptr on the host.
  virtual void* native() const = 0;
  // Blocks the host until everything queued so far has completed.
  virtual void synchronize() = 0;
};

// A marker in a stream (cudaEvent_t).
class Event {
 public:
  virtual ~Event() = default;
  // Marks the point after the work queued so far on `stream`.
  virtual void record(Stream& stream) = 0;
  // Work queued on `stream` after this call starts only once the recorded point is reached.
  virtual void wait_on(Stream& stream) = 0;
  // Blocks the host until the recorded point is reached.
  virtual void synchronize() = 0;
  // True once the recorded point has been reached (never blocks).
  virtual bool query() = 0;
  // Milliseconds from `start`'s recorded point to this one's, both reached (synchronize
  // first). Only for events made by Backend::new_timing_event() of one backend.
  virtual double elapsed_ms(const Event& start) const = 0;
};

// A whole step captured once and replayed (a CUDA graph): the same device work, on the same
// buffers, as the eager calls that were captured. Values the step reads from device memory
// (the step scalars) are whatever those buffers hold at replay time, so they are copied in
// before each replay, outside the graph. Backend::capture() makes one.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  // Enqueues the captured work on the backend's compute stream.
  virtual void replay() = 0;
};

// The host's trivial stream and event: work is complete when the call that queued it returns.
class HostStream final : public Stream {
 public:
  void* native() const override { return nullptr; }
  void synchronize() override {}
};

class HostEvent final : public Event {
 public:
  // The host clock at the point: the work queued before has completed when record() runs.
  void record(Stream&) override { at_ = std::chrono::steady_clock::now(); }
  void wait_on(Stream&) override {}
  void synchronize() override {}
  bool query() override { return true; }
  double elapsed_ms(const Event& start) const override {
    const auto& s = static_cast<const HostEvent&>(start);
    return std::chrono::duration<double, std::milli>(at_ - s.at_).count();
  }

 private:
  std::chrono::steady_clock::time_point at_{};
};

}  // namespace fresco
