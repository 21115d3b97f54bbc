// A transport built over an MPI communicator (CUDA IPC, NCCL, UCX, the bench's skipped
// transfers): it keeps the MPI communicator for host operations (set-up gathers,
// barriers, reports, aborting the job) and counts its bytes there, and implements the planned
// exchanges itself.
#pragma once

#include <memory>

#include "mpi/comm/mpi_communicator.hpp"

namespace fresco {

class LayeredCommunicator : public Communicator {
 public:
  explicit LayeredCommunicator(std::unique_ptr<MpiCommunicator> base) : base_(std::move(base)) {
    Communicator::set_deadline(base_->deadline());
  }

  int rank() const override { return base_->rank(); }
  int size() const override { return base_->size(); }
  void set_deadline(double seconds) override {
    Communicator::set_deadline(seconds);
    base_->set_deadline(seconds);
  }
  CommStats& stats() override { return base_->stats(); }
  void host_all_gather(const void* send, void* recv, const Displacements& recv_d) override {
    base_->host_all_gather(send, recv, recv_d);
  }
  void barrier() override { base_->barrier(); }
  [[noreturn]] void abort(int exit_code) override { base_->abort(exit_code); }

 protected:
  std::unique_ptr<MpiCommunicator> base_;
};

}  // namespace fresco
