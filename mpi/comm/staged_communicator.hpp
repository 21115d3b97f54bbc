// Host-staged transports for device buffers: GPU ranks over a host transport, where neither NCCL
// nor CUDA IPC applies (ranks on different nodes without NCCL, an MPI that is not GPU-aware, a
// UCX that cannot register GPU memory).
//
// One piece of staging over any host communicator (`host`: MpiCommunicator, UcxCommunicator).
// Each exchange gets pinned host mirrors of its device buffers, made once when the exchange is
// planned, and an exchange of the same shape between the mirrors, planned on `host`. A round:
//   start(after):   the communicator's copy stream waits for `after` and copies the send parts
//                   to their mirror; the host exchange starts once they are there: where it can
//                   start itself (GatedStart: UCX, whose progress thread issues the puts once the
//                   copies are done) start() returns at once, else (MPI, whose calls belong to
//                   the main thread) start() waits for the copies on the host and starts it.
//   finish(before): waits for the host exchange (with the communicator's deadline), copies the
//                   received parts to the device on the copy stream, and `before` waits for them.
// Host buffers go to `host` unchanged. Not capturable: finish() waits on the host, except on a
// communicator of one rank, whose exchanges are device copies on the stream.
#pragma once

#include <functional>
#include <memory>

#include "mpi/comm/communicator.hpp"

namespace fresco {

// What a host exchange may offer the staging: starting a round on its own once `ready` returns
// true (this round's data has reached the host), checked by the transport's own progress thread,
// so that the staged start() needs no host wait. Replaces start() for that round. `ready` must
// not block; it is called with the transport's lock held, from any of its threads, until it first
// returns true.
class GatedStart {
 public:
  virtual void start_when(std::function<bool()> ready) = 0;

 protected:
  ~GatedStart() = default;
};

// In-place sums of small device tensors (statistics: the GroupNorm sums of a patch-parallel
// decode) over a host communicator, through one pinned host mirror that the staging communicator
// keeps (one per communicator, not per call: cudaHostAlloc and cudaFreeHost cost a device
// synchronization each, and a second decode must allocate nothing). The mirror grows to the
// largest tensor summed so far; growing is refused while the stream is being captured (a staged
// sum waits on the host, so it never belongs to a captured step). Not thread-safe.
class StagedAllReduce {
 public:
  // In place over `host`, ordered after the work on `stream`; the stream is waited on both ways.
  // Host tensors, and groups of one rank, go to `host` directly.
  void sum(Communicator& host, const Tensor& x, Stream& stream);

 private:
  std::shared_ptr<Storage> mirror_;  // pinned host memory
};

// Like a LayeredCommunicator, but over any host communicator: the host operations (set-up
// gathers, barriers, reports, aborting the job), the deadline and the counts are the host
// transport's, which implements them for its own exchanges (UCX keeps progressing in a barrier).
class StagedCommunicator final : public Communicator {
 public:
  // Takes `host` (a host transport of the same ranks); not collective.
  explicit StagedCommunicator(std::unique_ptr<Communicator> host);
  ~StagedCommunicator() override;

  // "ulysses: mpi ranks {0,1} of world (host-staged)",
  // "ring: mpi ranks {0,2} of world (ucx one-sided, host-staged)"
  std::string describe() const override;
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  bool device_memory() const override { return true; }
  bool capturable() const override { return size() == 1; }

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;

  void all_reduce_sum(const Tensor& x, Stream& stream) override;
  void host_all_gather(const void* send, void* recv, const Displacements& recv_d) override {
    host_->host_all_gather(send, recv, recv_d);
  }
  void barrier() override { host_->barrier(); }
  void set_deadline(double seconds) override {
    Communicator::set_deadline(seconds);
    host_->set_deadline(seconds);
  }
  [[noreturn]] void abort(int exit_code) override;
  CommStats& stats() override { return host_->stats(); }

 private:
  std::unique_ptr<Communicator> host_;
  // Where the copies between the device buffers and their mirrors run (a CUDA stream; none for
  // one rank): off the compute stream, so the work queued after start() does not wait for them.
  std::unique_ptr<Stream> copies_;
  StagedAllReduce reduce_;
};

}  // namespace fresco
