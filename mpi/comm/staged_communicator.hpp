// Host-staged MPI for device buffers: the transport of GPU ranks where neither NCCL nor CUDA
// IPC applies (ranks on different nodes without NCCL, a cluster whose MPI is not GPU-aware).
//
// Each exchange gets pinned host mirrors of its device buffers, made once when the exchange is
// planned, and an MPI exchange of the same shape between the mirrors. start() copies the send
// parts to their mirror on the producer's stream, waits for it (MPI reads host memory) and posts
// the messages; finish() waits for them (with the communicator's deadline) and copies the
// received parts to the device on the consumer's stream. Host buffers go to the MPI
// communicator unchanged. Not capturable: start() and finish() wait on the host, except on a
// communicator of one rank, whose exchanges are device copies on the stream.
#pragma once

#include <memory>

#include "mpi/comm/layered_communicator.hpp"

namespace fresco {

// In-place sum of a small device tensor (statistics) over `comm`, through a host copy: the
// stream is waited on both ways. Host tensors are summed directly.
void staged_all_reduce_sum(MpiCommunicator& comm, const Tensor& x, Stream& stream);

class StagedCommunicator final : public LayeredCommunicator {
 public:
  explicit StagedCommunicator(std::unique_ptr<MpiCommunicator> base);

  std::string describe() const override { return base_->describe() + " (host-staged)"; }
  bool device_memory() const override { return true; }
  bool capturable() const override { return size() == 1; }

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;
  void all_reduce_sum(const Tensor& x, Stream& stream) override;
};

}  // namespace fresco
