#include "mpi/comm/nccl_communicator.hpp"

#include <cstdio>

#include "mpi/comm/device_exchange.hpp"
#include "mpi/comm/gpu_watchdog.hpp"
#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/transfer_plan.hpp"

namespace fresco {
namespace {

// One round of grouped point-to-point calls plus the local copy.
class NcclExchange final : public DeviceExchange {
 public:
  NcclExchange(cudaStream_t stream, Communicator& comm, ncclComm_t nccl, std::string what,
               std::vector<Tensor> buffers, TransferPlan plan)
      : DeviceExchange(stream, comm, std::move(what), plan.bytes_sent()),
        nccl_(nccl),
        buffers_(std::move(buffers)),
        plan_(std::move(plan)) {}

 private:
  void enqueue(cudaStream_t stream) override {
    FRESCO_NCCL_CHECK(ncclGroupStart());
    for (const PeerTransfer& t : plan_.receives)
      FRESCO_NCCL_CHECK(ncclRecv(t.buffer, t.bytes, ncclUint8, t.peer, nccl_, stream));
    for (const PeerTransfer& t : plan_.sends)
      FRESCO_NCCL_CHECK(ncclSend(t.buffer, t.bytes, ncclUint8, t.peer, nccl_, stream));
    FRESCO_NCCL_CHECK(ncclGroupEnd());
    copy_all(plan_.local, stream);
  }

  ncclComm_t nccl_;
  std::vector<Tensor> buffers_;  // keeps the bound memory alive
  TransferPlan plan_;
};

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<MpiCommunicator> base) : LayeredCommunicator(std::move(base)) {
  ncclUniqueId id{};
  if (base_->rank() == 0) FRESCO_NCCL_CHECK(ncclGetUniqueId(&id));
  FRESCO_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, base_->comm()));
  FRESCO_NCCL_CHECK(ncclCommInitRank(&comm_, base_->size(), id, base_->rank()));
  ncclComm_t comm = comm_;
  const std::string label = base_->describe();
  watchdog_id_ = GpuWatchdog::instance().add(
      [comm, label]() -> std::string {
        ncclResult_t async = ncclSuccess;
        if (ncclCommGetAsyncError(comm, &async) != ncclSuccess || async == ncclSuccess || async == ncclInProgress)
          return {};
        return std::string("NCCL reported an asynchronous error on ") + label + ": " + ncclGetErrorString(async) +
               " (a peer failed or the network did); ending the job";
      },
      [comm]() { ncclCommAbort(comm); });
}

NcclCommunicator::~NcclCommunicator() {
  GpuWatchdog::instance().remove(watchdog_id_);
  if (comm_) {
    cudaStreamSynchronize(stream_.get());
    ncclCommDestroy(comm_);
  }
}

std::string NcclCommunicator::describe() const { return base_->describe() + " (nccl)"; }

void NcclCommunicator::watch(Stream& stream) {
  GpuWatchdog::instance().expect(cuda::native_stream(stream), deadline(), "a step's transfers on " + describe());
}

std::unique_ptr<Exchange> NcclCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                       const Tensor& recv, const Displacements& recv_d) {
  TransferPlan plan = plan_all_to_all(rank(), size(), send, send_d, recv, recv_d);
  return std::make_unique<NcclExchange>(stream_.get(), *this, comm_, "all-to-all", std::vector<Tensor>{send, recv},
                                        std::move(plan));
}

std::unique_ptr<Exchange> NcclCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv, int source) {
  TransferPlan plan = plan_send_recv(rank(), size(), send, dest, recv, source);
  return std::make_unique<NcclExchange>(stream_.get(), *this, comm_, "send/recv", std::vector<Tensor>{send, recv},
                                        std::move(plan));
}

std::unique_ptr<Exchange> NcclCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  TransferPlan plan = plan_all_gather(rank(), size(), all, all_d);
  return std::make_unique<NcclExchange>(stream_.get(), *this, comm_, "all-gather", std::vector<Tensor>{all},
                                        std::move(plan));
}

void NcclCommunicator::all_reduce_sum(const Tensor& x, Stream& stream) {
  FRESCO_ASSERT(x.defined() && (x.dtype() == DType::f32 || x.dtype() == DType::f64) && x.contiguous() &&
                    x.device() == Device::cuda,
                "NCCL all_reduce_sum: a contiguous f32 or f64 device tensor expected, got " +
                    (x.defined() ? x.describe() : std::string("an undefined tensor")));
  if (size() == 1) return;
  FRESCO_NCCL_CHECK(ncclAllReduce(x.raw(), x.raw(), size_t(x.numel()), x.dtype() == DType::f32 ? ncclFloat : ncclDouble,
                                  ncclSum, comm_, cuda::native_stream(stream)));
  stats().bytes_sent += double(x.bytes());
}

void NcclCommunicator::abort(int exit_code) {
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  base_->abort(exit_code);
}

}  // namespace fresco
