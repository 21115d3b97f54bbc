#include "mpi/comm/staged_communicator.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_stream.hpp"

namespace fresco {
namespace {

// Page-locked host memory (the device copies to and from it run asynchronously at full speed).
std::shared_ptr<Storage> pinned_host(size_t bytes) {
  void* data = nullptr;
  if (bytes) FRESCO_CUDA_CHECK(cudaHostAlloc(&data, bytes, cudaHostAllocDefault));
  return std::make_shared<Storage>(Device::cpu, data, bytes, [](void* p) {
    if (p) cudaFreeHost(p);
  });
}

// A host tensor of the same shape and dtype as `device`, in pinned memory.
Tensor host_mirror(const Tensor& device) {
  return Tensor::from_storage(pinned_host(device.bytes()), 0, device.shape(), device.dtype());
}

void require_contiguous(const Tensor& t, const char* what) {
  FRESCO_ASSERT(t.defined() && t.contiguous(),
                std::string(what) + ": host-staged buffers must be contiguous, got " +
                    (t.defined() ? t.describe() : std::string("an undefined tensor")));
}

// One byte range copied between a device buffer and its mirror.
struct Range {
  size_t offset = 0, bytes = 0;
};

class StagedExchange final : public Exchange {
 public:
  StagedExchange(std::unique_ptr<Exchange> inner, Tensor send_device, Tensor send_host,
                 std::vector<Range> outgoing, Tensor recv_device, Tensor recv_host,
                 std::vector<Range> incoming)
      : inner_(std::move(inner)),
        send_device_(std::move(send_device)),
        send_host_(std::move(send_host)),
        recv_device_(std::move(recv_device)),
        recv_host_(std::move(recv_host)),
        outgoing_(std::move(outgoing)),
        incoming_(std::move(incoming)) {}

  void start(Stream& after) override {
    // The previous round's copies out of the receive mirror must be done before MPI writes it.
    if (copied_in_) copied_in_->synchronize();
    const cudaStream_t s = cuda::native_stream(after);
    for (const Range& r : outgoing_)
      if (r.bytes)
        FRESCO_CUDA_CHECK(cudaMemcpyAsync(at(send_host_, r.offset), at(send_device_, r.offset), r.bytes,
                                          cudaMemcpyDeviceToHost, s));
    inner_->start(after);  // synchronizes `after`: the mirror holds the data
  }

  void finish(Stream& before) override {
    inner_->finish(before);
    const cudaStream_t s = cuda::native_stream(before);
    for (const Range& r : incoming_)
      if (r.bytes)
        FRESCO_CUDA_CHECK(cudaMemcpyAsync(at(recv_device_, r.offset), at(recv_host_, r.offset), r.bytes,
                                          cudaMemcpyHostToDevice, s));
    if (!copied_in_) copied_in_ = std::make_unique<cuda::CudaEvent>();
    copied_in_->record(before);
  }

  bool poll() override { return inner_->poll(); }

 private:
  static char* at(const Tensor& t, size_t offset) { return static_cast<char*>(t.raw()) + offset; }

  std::unique_ptr<Exchange> inner_;
  Tensor send_device_, send_host_, recv_device_, recv_host_;
  std::vector<Range> outgoing_, incoming_;
  std::unique_ptr<cuda::CudaEvent> copied_in_;
};

// One rank alone (a Ulysses or Ring communicator of size 1 beside a larger group): the part for
// oneself is a device copy on the stream, nothing waits on the host, and so a step that uses
// it can be captured.
class LocalDeviceExchange final : public Exchange {
 public:
  LocalDeviceExchange(Tensor send, Tensor recv, Range from, size_t to)
      : send_(std::move(send)), recv_(std::move(recv)), from_(from), to_(to) {}

  void start(Stream& after) override {
    if (from_.bytes && (send_.raw() != recv_.raw() || from_.offset != to_))
      FRESCO_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(recv_.raw()) + to_,
                                        static_cast<const char*>(send_.raw()) + from_.offset, from_.bytes,
                                        cudaMemcpyDeviceToDevice, cuda::native_stream(after)));
  }
  void finish(Stream&) override {}
  bool poll() override { return true; }

 private:
  Tensor send_, recv_;
  Range from_;
  size_t to_;
};

std::vector<Range> ranges(const Displacements& d) {
  std::vector<Range> out;
  for (size_t i = 0; i < d.counts.size(); ++i) out.push_back({d.offsets[i], d.counts[i]});
  return out;
}

}  // namespace

StagedCommunicator::StagedCommunicator(std::unique_ptr<MpiCommunicator> base)
    : LayeredCommunicator(std::move(base)) {}

std::unique_ptr<Exchange> StagedCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                         const Tensor& recv, const Displacements& recv_d) {
  if (send.device() == Device::cpu && recv.device() == Device::cpu)
    return base_->all_to_all(send, send_d, recv, recv_d);
  require_contiguous(send, "staged all-to-all");
  require_contiguous(recv, "staged all-to-all");
  if (size() == 1)
    return std::make_unique<LocalDeviceExchange>(send, recv, Range{send_d.offsets[0], send_d.counts[0]},
                                                 recv_d.offsets[0]);
  Tensor send_host = host_mirror(send), recv_host = host_mirror(recv);
  auto inner = base_->all_to_all(send_host, send_d, recv_host, recv_d);
  return std::make_unique<StagedExchange>(std::move(inner), send, send_host, ranges(send_d), recv, recv_host,
                                          ranges(recv_d));
}

std::unique_ptr<Exchange> StagedCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv,
                                                        int source) {
  if (send.device() == Device::cpu && recv.device() == Device::cpu) return base_->send_recv(send, dest, recv, source);
  require_contiguous(send, "staged send/recv");
  require_contiguous(recv, "staged send/recv");
  if (size() == 1)
    return std::make_unique<LocalDeviceExchange>(send, recv, Range{0, std::min(send.bytes(), recv.bytes())}, 0);
  Tensor send_host = host_mirror(send), recv_host = host_mirror(recv);
  auto inner = base_->send_recv(send_host, dest, recv_host, source);
  return std::make_unique<StagedExchange>(std::move(inner), send, send_host,
                                          std::vector<Range>{{0, send.bytes()}}, recv, recv_host,
                                          std::vector<Range>{{0, recv.bytes()}});
}

std::unique_ptr<Exchange> StagedCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  if (all.device() == Device::cpu) return base_->all_gather_in_place(all, all_d);
  require_contiguous(all, "staged all-gather");
  if (size() == 1) return std::make_unique<LocalDeviceExchange>(all, all, Range{}, 0);  // it holds every part
  Tensor host = host_mirror(all);
  auto inner = base_->all_gather_in_place(host, all_d);
  // Out: this rank's part; in: every other rank's part (one mirror serves both directions).
  const size_t me = size_t(rank());
  std::vector<Range> others;
  for (size_t i = 0; i < all_d.counts.size(); ++i)
    if (i != me) others.push_back({all_d.offsets[i], all_d.counts[i]});
  return std::make_unique<StagedExchange>(std::move(inner), all, host,
                                          std::vector<Range>{{all_d.offsets[me], all_d.counts[me]}}, all, host,
                                          std::move(others));
}

void staged_all_reduce_sum(MpiCommunicator& comm, const Tensor& x, Stream& stream) {
  if (x.device() == Device::cpu || comm.size() == 1) {
    comm.all_reduce_sum(x, stream);
    return;
  }
  require_contiguous(x, "staged all-reduce");
  const Tensor host = host_mirror(x);  // small: a fresh pinned buffer
  const cudaStream_t s = cuda::native_stream(stream);
  FRESCO_CUDA_CHECK(cudaMemcpyAsync(host.raw(), x.raw(), x.bytes(), cudaMemcpyDeviceToHost, s));
  stream.synchronize();
  HostStream host_stream;
  comm.all_reduce_sum(host, host_stream);
  FRESCO_CUDA_CHECK(cudaMemcpyAsync(x.raw(), host.raw(), x.bytes(), cudaMemcpyHostToDevice, s));
  stream.synchronize();  // `host` is freed on return
}

void StagedCommunicator::all_reduce_sum(const Tensor& x, Stream& stream) { staged_all_reduce_sum(*base_, x, stream); }

}  // namespace fresco
