// What the stream-ordered device transports (NCCL, CUDA IPC) share: an exchange whose
// transfers run on the communicator's own stream, forked from the producer's stream at start()
// and joined into the consumer's at finish() by events, so the transfer overlaps whatever the
// compute stream does in between, and the whole pattern can be captured into a CUDA graph
// (the fork and join become graph edges). Each start() is watched (GpuWatchdog): a transfer
// that does not complete within the deadline ends the job.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_stream.hpp"
#include "mpi/comm/communicator.hpp"
#include "mpi/comm/exchange_trace.hpp"
#include "mpi/comm/gpu_watchdog.hpp"
#include "mpi/comm/transfer_plan.hpp"

namespace fresco {

class DeviceExchange : public Exchange {
 public:
  // `comm_stream`: the communicator's stream; `comm`: for the deadline, the report and the
  // byte count (`bytes_per_round` sent to other ranks by each start()).
  DeviceExchange(cudaStream_t comm_stream, Communicator& comm, std::string what, double bytes_per_round)
      : comm_stream_(comm_stream),
        comm_(comm),
        what_(std::move(what) + " of " + comm.describe()),
        bytes_per_round_(bytes_per_round),
        trace_(ExchangeTrace::if_requested(what_)) {}
  ~DeviceExchange() override {
    // Queued transfers still use the buffers and signals: let them complete (a dead peer is
    // the watchdog's to report).
    if (started_) cudaStreamSynchronize(comm_stream_);
  }

  void start(Stream& after) override {
    FRESCO_ASSERT(!started_, what_ + " started again before finish()");
    stamp(cuda::native_stream(after), ExchangeTrace::produced);
    forked_.record(after);
    forked_.wait_on(comm_stream_view_);
    stamp(comm_stream_, ExchangeTrace::comm_begins);
    enqueue(comm_stream_);
    stamp(comm_stream_, ExchangeTrace::arrived);
    done_.record(comm_stream_view_);
    GpuWatchdog::instance().expect(comm_stream_, comm_.deadline(), what_);
    comm_.stats().bytes_sent += bytes_per_round_;
    started_ = true;
  }
  void finish(Stream& before) override {
    if (!started_) return;
    stamp(cuda::native_stream(before), ExchangeTrace::consumer_waits);
    done_.wait_on(before);
    stamp(cuda::native_stream(before), ExchangeTrace::consumer_runs);
    started_ = false;
  }
  // Progressed by the device: nothing to drive from the host.
  bool poll() override { return true; }

 protected:
  // Queues this round's transfers on `stream` (the communicator's stream).
  virtual void enqueue(cudaStream_t stream) = 0;
  // Local copies on `stream` (cudaMemcpyAsync between device buffers of this rank).
  static void copy_all(const std::vector<DeviceCopy>& copies, cudaStream_t stream) {
    for (const DeviceCopy& c : copies)
      if (c.bytes && c.dst != c.src)
        FRESCO_CUDA_CHECK(cudaMemcpyAsync(c.dst, c.src, c.bytes, cudaMemcpyDeviceToDevice, stream));
  }
  const std::string& what() const { return what_; }
  // A phase of this round for FRESCO_COMM_TRACE (nothing unless it is set).
  void stamp(cudaStream_t stream, ExchangeTrace::Phase phase) {
    if (trace_) trace_->stamp(stream, phase);
  }

 private:
  // The engine's Stream view of the communicator's stream, for the event calls.
  class BorrowedStream final : public Stream {
   public:
    explicit BorrowedStream(cudaStream_t s) : s_(s) {}
    void* native() const override { return s_; }
    void synchronize() override { FRESCO_CUDA_CHECK(cudaStreamSynchronize(s_)); }

   private:
    cudaStream_t s_;
  };

  cudaStream_t comm_stream_;
  BorrowedStream comm_stream_view_{comm_stream_};
  Communicator& comm_;
  std::string what_;
  double bytes_per_round_;
  cuda::CudaEvent forked_, done_;
  bool started_ = false;
  std::unique_ptr<ExchangeTrace> trace_;  // FRESCO_COMM_TRACE only
};

}  // namespace fresco
