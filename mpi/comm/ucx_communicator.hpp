// Communicator over UCX one-sided puts (ucp API) for host buffers: the inter-node transport of
// StreamFusion-style exchanges. Bootstrapped from an MPI communicator of the same ranks, which
// it owns and which carries the set-up (worker addresses, remote keys) and the immediate
// collectives (all_reduce_sum, host_all_gather).
//
// Once per communicator: a UCX context (RMA + 64-bit atomics), one worker, one endpoint per
// peer. Once per exchange (collective, created in the same order on every rank): the receive
// region and a control block of 2 x size 64-bit counters are mapped (ucp_mem_map), and every
// rank learns each peer's addresses, remote keys and where its data lands there.
//
// Per transfer and step (epoch e of the exchange), receiver R and sender S:
//   R.start():   atomic add 1 to S.ready[R]       "R's buffer is free for epoch e"
//   S (in start(), polling, or on the progress thread, once S.ready[R] >= e):
//                put(data -> R's region) ; ucp_worker_fence ; atomic add 1 to R.arrived[S]
//   R.finish():  drives ucp_worker_progress until R.arrived[S] >= e for every sender, and S's
//                puts have completed locally (its send buffer may be rewritten)
// No matched receives: a sender never writes a buffer its receiver still reads, because the
// receiver opens it at start() of the next epoch (or earlier, by Exchange::release(), once the
// consumers are done). Waits carry the communicator's deadline (CommTimeout naming the peers
// outstanding). UCX moves puts carried as messages (TCP) only while both sides progress: a
// progress thread per communicator drives the worker between the main thread's calls, and
// issues the puts that became possible since (a receiver opened its buffer; for the host-staged
// transport, the round's data reached the host: GatedStart). One lock serializes every UCX call
// of the communicator.
#pragma once

#include <memory>
#include <string>

#include "mpi/comm/layered_communicator.hpp"

namespace fresco {

struct UcxRuntime;  // context, worker and endpoints (ucx_communicator.cpp)

class UcxCommunicator final : public LayeredCommunicator {
 public:
  // Collective over `base`'s ranks.
  explicit UcxCommunicator(std::unique_ptr<MpiCommunicator> base);
  ~UcxCommunicator() override;
  UcxCommunicator(const UcxCommunicator&) = delete;
  UcxCommunicator& operator=(const UcxCommunicator&) = delete;

  // "ring: mpi ranks {0,2} of world (ucx one-sided)"
  std::string describe() const override { return base_->describe() + " (ucx one-sided)"; }
  bool device_memory() const override { return false; }
  bool capturable() const override { return false; }

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;

  void all_reduce_sum(const Tensor& x, Stream& stream) override { base_->all_reduce_sum(x, stream); }
  // An MPI barrier that keeps UCX progressing (a peer may still need this rank's acks).
  void barrier() override;

  MpiCommunicator& base() { return *base_; }
  UcxRuntime& runtime() { return *ucx_; }

 private:
  std::unique_ptr<UcxRuntime> ucx_;
};

}  // namespace fresco
