// The transfers of one planned exchange, for the device transports (NCCL, CUDA IPC): which
// byte ranges go to and come from which peer, and the local copy. Built and checked once when
// an exchange is created, replayed every round.
#pragma once

#include <cstddef>
#include <vector>

#include "mpi/comm/communicator.hpp"

namespace fresco {

// A copy between two device buffers of this rank (the part a rank sends itself), or a put
// into a peer's mapped buffer.
struct DeviceCopy {
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
};

// Bytes exchanged with one peer: for a send, `buffer` points into the send tensor; for a
// receive, into the receive tensor, at `offset` bytes from that tensor's start.
struct PeerTransfer {
  int peer = 0;
  void* buffer = nullptr;
  size_t offset = 0;
  size_t bytes = 0;
};

struct TransferPlan {
  std::vector<PeerTransfer> sends, receives;  // non-empty transfers with other ranks
  std::vector<DeviceCopy> local;              // this rank's own part
  // The receive tensor (the window peers write into for a one-sided transport).
  Tensor window;
  double bytes_sent() const;
};

// The same semantics as Communicator's exchanges (communicator.hpp); buffers must be contiguous
// device tensors (a failed check names the exchange and the buffer).
TransferPlan plan_all_to_all(int rank, int size, const Tensor& send, const Displacements& send_d,
                             const Tensor& recv, const Displacements& recv_d);
TransferPlan plan_send_recv(int rank, int size, const Tensor& send, int dest, const Tensor& recv, int source);
TransferPlan plan_all_gather(int rank, int size, const Tensor& all, const Displacements& all_d);

}  // namespace fresco
