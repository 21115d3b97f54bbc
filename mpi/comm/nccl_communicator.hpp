// NCCL for device buffers between GPU ranks (one GPU each; NCCL refuses two ranks on one GPU).
//
// The NCCL communicator is bootstrapped over the MPI communicator it is built from (rank 0's
// unique id broadcast by MPI), which it keeps for host operations (host all-gathers,
// barriers). Exchanges are grouped point-to-point calls (ncclSend/ncclRecv of bytes between
// ncclGroupStart/End: all-to-all with uneven counts, ring send/receive, the in-place all-gather
// of uneven parts) on the communicator's stream, forked from and joined into the compute stream
// by events (device_exchange.hpp), so they overlap compute and can be captured into a CUDA
// graph. Failure: a watchdog polls ncclCommGetAsyncError and the transfers' completion; on an
// error or past the deadline it aborts the NCCL communicator and ends the process (status 6).
#pragma once

#include <nccl.h>

#include <memory>

#include "cuda/cuda_stream.hpp"
#include "mpi/comm/layered_communicator.hpp"

namespace fresco {

// FRESCO_NCCL_CHECK: the one checking macro of the NCCL family; throws ApiError naming the call.
#define FRESCO_NCCL_CHECK(call)                                                                \
  do {                                                                                         \
    const ncclResult_t fresco_nccl_rc_ = (call);                                               \
    if (fresco_nccl_rc_ != ncclSuccess && fresco_nccl_rc_ != ncclInProgress)                   \
      throw ::fresco::ApiError(std::string("NCCL call failed: ") +                            \
                               ncclGetErrorString(fresco_nccl_rc_) + " [" #call " at " +       \
                               ::fresco::source_location(__FILE__, __LINE__) + "]");           \
  } while (0)

class NcclCommunicator final : public LayeredCommunicator {
 public:
  // Collective over `base`. Every rank must have selected its GPU (cudaSetDevice) before.
  explicit NcclCommunicator(std::unique_ptr<MpiCommunicator> base);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string describe() const override;
  bool device_memory() const override { return true; }
  bool capturable() const override { return true; }
  void watch(Stream& stream) override;

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;
  void all_reduce_sum(const Tensor& x, Stream& stream) override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  ncclComm_t comm_ = nullptr;
  cuda::CudaStream stream_;  // transfers run here, between the fork and join events
  int watchdog_id_ = 0;
};

}  // namespace fresco
