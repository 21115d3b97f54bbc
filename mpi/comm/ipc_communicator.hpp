// CUDA IPC one-sided transport between the GPU ranks of one node (the intra-node half of
// StreamFusion's one-sided communication). Ranks may share a GPU, which NCCL refuses, so
// multi-rank GPU runs and tests work on a one-GPU host.
//
// Set-up: every rank exports a block of 32-bit signal words (collective, at communicator
// creation); when an exchange is planned, each receiver tells each of its senders, point to
// point, where that sender's part goes (the IPC handle of the receive buffer's allocation and
// the offset), and the sender maps it once (cudaIpcOpenMemHandle, cached per allocation).
// A transfer is then a put, a copy-engine copy straight into the peer's receive buffer,
// followed by a signal written into the peer's memory; there is no matched receive.
//
// Signals belong to channels: the k-th exchange that sends from rank S to rank R uses channel
// (S->R, k) on both sides, so exchanges between a pair must be planned in the same order on
// both ranks (MPI's rule for matching messages), while other ranks may plan others (a halo
// exchange involves neighbours only). The handshake per round and channel, all of it queued on
// the communicator's stream with CUDA's stream memory operations (cuStreamWriteValue32 /
// cuStreamWaitValue32, run by the device's front end without occupying an SM, and capturable
// into a CUDA graph):
//
//   R start():  ready(S->R,k)@S := 1     R's buffer may be overwritten: its earlier reads are done
//   S start():  wait ready(S->R,k)@S == 1; := 0; put data -> R; arrived(S->R,k)@R := 1
//   R start():  wait arrived(S->R,k)@R == 1; := 0     (then the join event)
//
// Only 0 and 1 are ever written, so a captured graph replays the same values every step.
// Every rank queues its "ready" signals before any wait, and starts the exchanges of a
// communicator in the same order, so the waits cannot form a cycle.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/cuda_stream.hpp"
#include "mpi/comm/layered_communicator.hpp"

namespace fresco {

class IpcCommunicator final : public LayeredCommunicator {
 public:
  // Collective over `base`, whose ranks must share one node. The GPU is selected before.
  explicit IpcCommunicator(std::unique_ptr<MpiCommunicator> base);
  ~IpcCommunicator() override;
  IpcCommunicator(const IpcCommunicator&) = delete;
  IpcCommunicator& operator=(const IpcCommunicator&) = delete;

  std::string describe() const override { return base_->describe() + " (cuda ipc)"; }
  bool device_memory() const override { return true; }
  bool capturable() const override { return true; }
  void watch(Stream& stream) override;

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;
  // Small statistics: staged through the host (MPI).
  void all_reduce_sum(const Tensor& x, Stream& stream) override;

  // Signal words of channel (sender -> receiver, k), as this rank addresses them: "ready" lives
  // in the sender's block, "arrived" in the receiver's.
  uint32_t* ready_word(int sender, int receiver, int k) const;
  uint32_t* arrived_word(int sender, int receiver, int k) const;

 private:
  std::unique_ptr<Exchange> bind(const struct TransferPlan& plan, const std::string& what,
                                 std::vector<Tensor> buffers);
  // This process's pointer to a peer's exported allocation (mapped once, kept until the end).
  void* map_peer_memory(const cudaIpcMemHandle_t& handle);
  // Channels: the lowest free k of a direction and peer, and its return.
  int take_channel(std::vector<std::vector<int>>& used, int peer);
  friend class IpcExchange;

  cuda::CudaStream stream_;
  void* signals_ = nullptr;                 // this rank's block: 2 x size x kChannels words
  std::vector<uint32_t*> peer_signals_;     // every rank's block, mapped here (own: signals_)
  std::map<std::string, void*> mapped_;     // handle bytes -> mapped base pointer
  // Per peer, the channels in use: sending to it, receiving from it (flags by k).
  std::vector<std::vector<int>> send_channels_, recv_channels_;
};

}  // namespace fresco
