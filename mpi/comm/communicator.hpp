// The communicator interface of Fresco's parallel plans: rank and size within a group,
// all-to-all (uneven counts), exchange with ring neighbours, all-gather (uneven counts),
// all-reduce, barrier, and non-blocking forms that return a Request to wait on.
//
// Buffers are raw bytes on the communicator's device (host memory for MpiCommunicator); counts
// and offsets are in bytes. The NCCL, CUDA-IPC and UCX transports of later issues implement the
// same interface for device buffers, so the parallel methods never name a transport.
// Every communicator counts the bytes it sends and the time it spends waiting, for the
// per-step accounting.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace fresco {

// An operation in flight. wait() completes it (and its receive buffers are then valid);
// test() advances it and says whether it is complete. Destroying an incomplete request waits.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

struct CommStats {
  double bytes_sent = 0;     // payload bytes this rank sent to other ranks
  double wait_seconds = 0;   // time spent blocked in communication calls and waits
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

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "mpi ranks {0,2} of world"

  // Peer i receives send[send.offsets[i] .. + send.counts[i]); what peer i sends lands at
  // recv[recv.offsets[i] ..]. The part for oneself is a local copy.
  virtual std::unique_ptr<Request> all_to_all_start(const void* send, const Displacements& send_d,
                                                    void* recv, const Displacements& recv_d) = 0;
  // Sends `send_bytes` to rank `dest` and receives `recv_bytes` from rank `source` (ring
  // neighbours); with dest == source == rank() it is a copy.
  virtual std::unique_ptr<Request> send_recv_start(const void* send, size_t send_bytes, int dest,
                                                   void* recv, size_t recv_bytes, int source) = 0;
  // Every rank contributes recv_d.counts[rank()] bytes from `send`; all receive everything.
  virtual std::unique_ptr<Request> all_gather_start(const void* send, void* recv,
                                                    const Displacements& recv_d) = 0;
  // In-place sum of `count` floats (or doubles) over the group.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  virtual void all_reduce_sum(double* data, size_t count) = 0;
  virtual void barrier() = 0;

  // Blocking forms.
  void all_to_all(const void* send, const Displacements& send_d, void* recv,
                  const Displacements& recv_d) {
    all_to_all_start(send, send_d, recv, recv_d)->wait();
  }
  void send_recv(const void* send, size_t send_bytes, int dest, void* recv, size_t recv_bytes,
                 int source) {
    send_recv_start(send, send_bytes, dest, recv, recv_bytes, source)->wait();
  }
  void all_gather(const void* send, void* recv, const Displacements& recv_d) {
    all_gather_start(send, recv, recv_d)->wait();
  }

  CommStats& stats() { return stats_; }
  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

}  // namespace fresco
