// The communicator interface of Fresco's parallel plans: planned, stream-ordered exchanges.
//
// An exchange (all-to-all with uneven counts, ring send/receive, in-place all-gather) is created
// once per image layout, bound to its buffers (where a transport registers memory: NCCL buffer
// registration, CUDA-IPC handles, UCX rkeys), and replayed every step (LAMMPS' setup() and
// forward_comm()):
//   exchange->start(compute);   // begins once the work queued on `compute` (the producer) is done
//   ... other work ...
//   exchange->finish(compute);  // work queued on `compute` afterwards sees the received data
// A transport that completes on a stream (NCCL, IPC) orders these with events; a host transport
// (MPI on host memory) synchronizes the stream in start() and waits on the host in finish().
// Waits have a deadline: a peer that is hung or dead makes finish() throw CommTimeout instead of
// hanging the job (main reports it and aborts every rank).
//
// Every communicator counts the bytes it sends and the time it spends waiting, for the
// per-step accounting.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/core/exec.hpp"
#include "src/core/tensor.hpp"

namespace fresco {

// A wait exceeded the communicator's deadline: some peer is hung or dead. Exit status 6.
class CommTimeout : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 6; }
};

struct CommStats {
  double bytes_sent = 0;    // payload bytes this rank sent to other ranks
  double wait_seconds = 0;  // host time spent blocked in communication waits
  void reset() { *this = CommStats(); }
};

// Byte counts and offsets of a variable-size exchange, one entry per peer rank.
struct Displacements {
  std::vector<size_t> counts;
  std::vector<size_t> offsets;
  // Packed layout: offsets are the running sum of counts.
  static Displacements packed(std::vector<size_t> counts);
  size_t total() const;
};

// The smallest allocation a plan should bind to exchanges: CUDA IPC maps whole 2 MiB granules of
// a peer's memory, once per process, so two small buffers sharing a granule cannot both be
// windows. Plans allocate their exchange buffers (one arena block) at least this large.
inline constexpr size_t kExchangeAllocationBytes = size_t(2) << 20;

// One planned transfer, bound to its buffers. start() and finish() alternate; an exchange may be
// replayed any number of times. Destroying a started exchange completes it first.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // Begins once the work already queued on `after` is done.
  virtual void start(Stream& after) = 0;
  // Work queued on `before` after this call sees the received data (and may reuse the sent
  // buffers). Throws CommTimeout past the communicator's deadline.
  virtual void finish(Stream& before) = 0;
  // Advances a host-progressed transfer without blocking; true when it is complete (or idle).
  virtual bool poll() = 0;
  // Optional, between finish() and the next start(): nothing reads the receive buffers after the
  // work queued on `after` until the next start() (the data was consumed, and no other exchange
  // sends from them), so a one-sided transport may let its peers write the next replay's data
  // now instead of at that start(). Default: nothing to do.
  //
  // Invariant for captured steps: a caller that releases an exchange in a step it captures
  // releases it at the same point of every step it replays, and in the eager step before the
  // capture. A one-sided transport may keep host state about the permission (IpcExchange's
  // `released_`: whether the next start() must still grant it, so that it is not granted twice,
  // which would let a peer put two rounds into a buffer the consumer still reads); the capture
  // bakes that state's value into the graph, and only this invariant keeps it true on replay.
  // Releasing in some replays and not in others (or changing which exchanges are released
  // without recapturing) breaks it: a put waits forever for a permission, or lands early.
  virtual void release(Stream& /*after*/) {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "mpi ranks {0,2} of world"
  // Whether exchanges may read and write device memory directly (NCCL, IPC, GPU-aware UCX);
  // a host transport needs host (or host-staged) buffers.
  virtual bool device_memory() const = 0;
  // Whether start()/finish() may be recorded into a captured CUDA graph (no host waits).
  virtual bool capturable() const = 0;

  // ---- planned exchanges (buffers: contiguous tensors; counts and offsets in bytes) -------
  // Peer i receives send[send_d.offsets[i] .. + send_d.counts[i]); what peer i sends lands at
  // recv[recv_d.offsets[i] ..]. The part for oneself is a local copy.
  virtual std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                               const Tensor& recv, const Displacements& recv_d) = 0;
  // Sends all of `send` to rank `dest` and receives all of `recv` from rank `source` (ring
  // neighbours); with dest == source == rank() it is a copy.
  virtual std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                              int source) = 0;
  // Every rank's part of `all` (all_d.offsets/counts[rank]) is its contribution; afterwards
  // every rank holds every part.
  virtual std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                        const Displacements& all_d) = 0;

  // ---- immediate collectives ------------------------------------------------------------
  // In-place sum over the group of an f32 or f64 tensor, ordered after the work on `stream`;
  // work queued on `stream` afterwards sees the sum.
  virtual void all_reduce_sum(const Tensor& x, Stream& stream) = 0;
  // Host-memory all-gather for set-up and reports (never inside a step): every rank contributes
  // recv_d.counts[rank()] bytes from `send`.
  virtual void host_all_gather(const void* send, void* recv, const Displacements& recv_d) = 0;
  virtual void barrier() = 0;

  // ---- failure ---------------------------------------------------------------------------
  // Longest a wait may block before it throws CommTimeout (seconds; <= 0: no deadline).
  // Virtual: a transport layered on another communicator forwards it.
  virtual void set_deadline(double seconds) { deadline_seconds_ = seconds; }
  double deadline() const { return deadline_seconds_; }
  // Ends every rank of the job now (MPI_Abort; NCCL/IPC: abort the communicators first).
  [[noreturn]] virtual void abort(int exit_code) = 0;

  // A transport layered on another communicator reports the inner one's counts.
  virtual CommStats& stats() { return stats_; }
  const CommStats& stats() const { return const_cast<Communicator*>(this)->stats(); }

  // Work queued on `stream` so far includes transfers that wait on peers (device transports):
  // it must complete within the deadline, or the job ends with status 6 (a watchdog thread
  // checks). Called after replaying a captured step, whose transfers the exchanges could not
  // watch themselves. A no-op for host transports, whose waits carry the deadline.
  virtual void watch(Stream& /*stream*/) {}

 protected:
  CommStats stats_;
  double deadline_seconds_ = kDefaultDeadlineSeconds;

 public:
  static constexpr double kDefaultDeadlineSeconds = 300;
};

}  // namespace fresco
