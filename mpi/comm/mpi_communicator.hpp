// Communicator over MPI for host buffers: the transport of CPU ranks and the bootstrap of the
// GPU transports. Owns its MPI_Comm (freed on destruction).
//
// Exchanges are plans of point-to-point messages (MPI_Isend/MPI_Irecv of bytes, plus a local
// copy for the part a rank sends itself), checked once when they are created. start()
// synchronizes the producer's stream (MPI reads host memory) and posts the messages; finish()
// waits for them on the host, polling MPI_Testall with a growing back-off, and throws
// CommTimeout past the deadline naming the operation, this rank and the peers still
// outstanding. Every rank must start the exchanges of one communicator in the same order
// (messages of one kind match by order: MPI's non-overtaking rule).
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

#include "mpi/comm/communicator.hpp"

namespace fresco {

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (a communicator made with MPI_Comm_split or _dup).
  explicit MpiCommunicator(MPI_Comm comm, std::string label = "mpi");
  // A communicator of the ranks of `parent` with the same `color`, ordered by `key`.
  static std::unique_ptr<MpiCommunicator> split(MPI_Comm parent, int color, int key,
                                                const std::string& label);
  // A communicator of this rank alone (a degree-1 Ulysses or Ring group); not collective.
  static std::unique_ptr<MpiCommunicator> self(const std::string& label);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // "ring: mpi ranks {0,2} of world" (world ranks in the order of this communicator's ranks).
  std::string describe() const override { return description_; }
  bool device_memory() const override { return false; }
  bool capturable() const override { return false; }
  MPI_Comm comm() const { return comm_; }
  // World rank of rank `r` of this communicator.
  int world_rank(int r) const { return world_ranks_[size_t(r)]; }

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;

  void all_reduce_sum(const Tensor& x, Stream& stream) override;
  void host_all_gather(const void* send, void* recv, const Displacements& recv_d) override;
  void barrier() override;
  // The same barrier, calling `progress` between its tests (for a transport layered on this
  // communicator whose peers may need this rank's progress to reach it), its timeout reported
  // as a barrier of `who`.
  void barrier_progressing(const std::function<void()>& progress, const std::string& who);
  [[noreturn]] void abort(int exit_code) override;

  // True once a wait of this communicator has timed out: exchanges destroyed afterwards
  // abandon their messages instead of waiting for a peer that is gone (the job is ending).
  bool failed() const { return failed_; }
  void mark_failed() { failed_ = true; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
  std::string label_, description_;
  bool failed_ = false;
};

}  // namespace fresco
