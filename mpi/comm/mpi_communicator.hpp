// Communicator over MPI for host buffers: the transport of CPU ranks and the bootstrap of the
// GPU transports. Owns its MPI_Comm (freed on destruction).
#pragma once

#include <mpi.h>

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
  std::string describe() const override { return label_; }
  MPI_Comm comm() const { return comm_; }

  std::unique_ptr<Request> all_to_all_start(const void* send, const Displacements& send_d,
                                            void* recv, const Displacements& recv_d) override;
  std::unique_ptr<Request> send_recv_start(const void* send, size_t send_bytes, int dest,
                                           void* recv, size_t recv_bytes, int source) override;
  std::unique_ptr<Request> all_gather_start(const void* send, void* recv,
                                            const Displacements& recv_d) override;
  void all_reduce_sum(float* data, size_t count) override;
  void all_reduce_sum(double* data, size_t count) override;
  void barrier() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::string label_;
};

}  // namespace fresco
