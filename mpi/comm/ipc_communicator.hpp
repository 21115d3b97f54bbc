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
//
// Why R sees the data once its wait for arrived(S->R,k) succeeds:
//  1. On S the put and the signal are queued in this order on one stream, so the signal write
//     starts only after the copy has completed.
//  2. cuStreamWriteValue32 without CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER (we pass DEFAULT)
//     fences before it writes, like __threadfence_system() scoped to the stream: the copy's
//     writes into R's memory are ordered before the signal's, system-wide.
//  3. So the data has reached R's memory before the signal can satisfy R's wait. What remains
//     is R's side: the driver lets a device reorder remote writes internally, and names exactly
//     this pattern (two remote writes in a defined order, the wait satisfied by the second,
//     later work reading the first) as the case for CU_STREAM_WAIT_VALUE_FLUSH. Where the
//     device reports CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES, R's arrival waits carry that
//     flag (flush_remote_writes_). Elsewhere the flag is not offered, and the argument rests on
//     1-2 alone: the sender's system-scope fence orders the two writes as they cross the link
//     (NVLink or PCIe peer-to-peer), and the receiver has no documented way to ask for more.
//     A test that compares exchanged contents cannot prove this ordering, only fail to refute it.
// The "ready" direction needs no flush: it carries no data, only the permission to overwrite,
// and R queues it after its reads of the buffer (stream order), fenced like any signal.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_stream.hpp"
#include "cuda/device_buffer.hpp"
#include "mpi/comm/layered_communicator.hpp"
#include "mpi/comm/staged_communicator.hpp"

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
  // Small statistics: staged through the host (MPI), in one pinned mirror.
  void all_reduce_sum(const Tensor& x, Stream& stream) override;

  // Signal words of channel (sender -> receiver, k), as this rank addresses them: "ready" lives
  // in the sender's block, "arrived" in the receiver's.
  uint32_t* ready_word(int sender, int receiver, int k) const;
  uint32_t* arrived_word(int sender, int receiver, int k) const;

 private:
  std::unique_ptr<Exchange> bind(const struct TransferPlan& plan, const std::string& what,
                                 std::vector<Tensor> buffers);
  // A peer's exported allocation mapped into this process (cudaIpcOpenMemHandle); closed by its
  // destructor (cudaIpcCloseMemHandle). Move-only.
  class PeerMapping {
   public:
    explicit PeerMapping(void* base) : base_(base) {}
    ~PeerMapping();
    PeerMapping(PeerMapping&& other) noexcept : base_(std::exchange(other.base_, nullptr)) {}
    PeerMapping& operator=(PeerMapping&&) = delete;
    PeerMapping(const PeerMapping&) = delete;
    PeerMapping& operator=(const PeerMapping&) = delete;
    void* get() const { return base_; }

   private:
    void* base_;
  };
  // This process's pointer to a peer's exported allocation (mapped once, kept until the end).
  void* map_peer_memory(const cudaIpcMemHandle_t& handle);
  // Channels: the lowest free k of a direction and peer, and its return.
  int take_channel(std::vector<std::vector<int>>& used, int peer);
  friend class IpcExchange;

  // Declared in the order of their use: destroyed in reverse, the peers' mappings are closed
  // before this rank's signal block is freed, and both after the destructor's stream wait.
  cuda::CudaStream stream_;
  bool flush_remote_writes_ = false;            // this GPU can flush on a wait (see above)
  cuda::DeviceAllocation signals_;              // this rank's block: 2 x size x kChannels words
  std::vector<uint32_t*> peer_signals_;         // every rank's block, mapped here (own: signals_)
  std::map<std::string, PeerMapping> mapped_;   // handle bytes -> the mapping
  // Per peer, the channels in use: sending to it, receiving from it (flags by k).
  std::vector<std::vector<int>> send_channels_, recv_channels_;
  StagedAllReduce reduce_;
};

}  // namespace fresco
