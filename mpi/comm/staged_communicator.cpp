#include "mpi/comm/staged_communicator.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>

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
  // `inner`: the host exchange between the mirrors; `copies`: the communicator's copy stream.
  StagedExchange(std::unique_ptr<Exchange> inner, Stream& copies, Tensor send_device, Tensor send_host,
                 std::vector<Range> outgoing, Tensor recv_device, Tensor recv_host, std::vector<Range> incoming)
      : inner_(std::move(inner)),
        gated_(dynamic_cast<GatedStart*>(inner_.get())),
        copies_(copies),
        send_device_(std::move(send_device)),
        send_host_(std::move(send_host)),
        recv_device_(std::move(recv_device)),
        recv_host_(std::move(recv_host)),
        outgoing_(std::move(outgoing)),
        incoming_(std::move(incoming)) {
    FRESCO_CUDA_CHECK(cudaGetDevice(&device_));
  }

  ~StagedExchange() override {
    inner_.reset();  // completes a started round first, and its gate reads copied_out_
    // Copies still queued read or write the mirrors, which are freed with this exchange.
    cudaEventSynchronize(copied_out_.get());
    cudaEventSynchronize(copied_in_.get());
  }

  void start(Stream& after) override {
    FRESCO_ASSERT(!started_, "host-staged exchange started again before finish()");
    // The host exchange opens the receive mirror to the peers when it starts: the previous
    // round's copies out of it must be done (an event never recorded is complete).
    copied_in_.synchronize();
    forked_.record(after);  // the producer's work before start() has written the send parts
    forked_.wait_on(copies_);
    const cudaStream_t s = cuda::native_stream(copies_);
    for (const Range& r : outgoing_)
      if (r.bytes)
        FRESCO_CUDA_CHECK(cudaMemcpyAsync(at(send_host_, r.offset), at(send_device_, r.offset), r.bytes,
                                          cudaMemcpyDeviceToHost, s));
    copied_out_.record(copies_);
    if (gated_) {
      gated_->start_when([this] { return on_host(); });  // returns at once
    } else {
      copied_out_.synchronize();  // the host transport reads the mirror now
      HostStream on_host_now;
      inner_->start(on_host_now);
    }
    started_ = true;
  }

  void finish(Stream& before) override {
    if (!started_) return;
    inner_->finish(copies_);  // a host wait: the receive mirror holds the data
    started_ = false;
    const cudaStream_t s = cuda::native_stream(copies_);
    for (const Range& r : incoming_)
      if (r.bytes)
        FRESCO_CUDA_CHECK(cudaMemcpyAsync(at(recv_device_, r.offset), at(recv_host_, r.offset), r.bytes,
                                          cudaMemcpyHostToDevice, s));
    copied_in_.record(copies_);
    copied_in_.wait_on(before);
  }

  bool poll() override { return inner_->poll(); }

  // The consumers of the device receive buffer are queued on `after`: the next round's copies
  // into it wait for them on the device. The mirror's only reader is the copy to the device:
  // once it is done, the host exchange may let its peers write the next round there (UCX).
  void release(Stream& after) override {
    forked_.record(after);
    forked_.wait_on(copies_);
    copied_in_.synchronize();
    HostStream mirror_free;
    inner_->release(mirror_free);
  }

 private:
  static char* at(const Tensor& t, size_t offset) { return static_cast<char*>(t.raw()) + offset; }

  // Whether this round's send parts are in the mirror. Also called on the host transport's
  // progress thread, which must use this rank's GPU (a thread without one would make a context
  // on GPU 0).
  bool on_host() {
    thread_local int current = -1;
    if (current != device_) {
      FRESCO_CUDA_CHECK(cudaSetDevice(device_));
      current = device_;
    }
    return copied_out_.query();
  }

  std::unique_ptr<Exchange> inner_;
  GatedStart* gated_;  // inner_, where it can start itself once the data is on the host
  Stream& copies_;
  Tensor send_device_, send_host_, recv_device_, recv_host_;
  std::vector<Range> outgoing_, incoming_;
  int device_ = 0;
  cuda::CudaEvent forked_, copied_out_, copied_in_;
  bool started_ = false;
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

StagedCommunicator::StagedCommunicator(std::unique_ptr<Communicator> host) : host_(std::move(host)) {
  FRESCO_ASSERT(!host_->device_memory(), "host staging over " + host_->describe() + ", which moves device memory");
  Communicator::set_deadline(host_->deadline());
  if (size() > 1) copies_ = std::make_unique<cuda::CudaStream>();
}

StagedCommunicator::~StagedCommunicator() = default;

void StagedCommunicator::abort(int exit_code) {
  host_->abort(exit_code);
  std::_Exit(exit_code);  // not reached: abort() does not return
}

std::string StagedCommunicator::describe() const {
  // The staging joins the host transport's note where it has one: "(ucx one-sided, host-staged)".
  std::string d = host_->describe();
  if (!d.empty() && d.back() == ')') return d.insert(d.size() - 1, ", host-staged");
  return d + " (host-staged)";
}

std::unique_ptr<Exchange> StagedCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                         const Tensor& recv, const Displacements& recv_d) {
  if (send.device() == Device::cpu && recv.device() == Device::cpu)
    return host_->all_to_all(send, send_d, recv, recv_d);
  require_contiguous(send, "staged all-to-all");
  require_contiguous(recv, "staged all-to-all");
  if (size() == 1)
    return std::make_unique<LocalDeviceExchange>(send, recv, Range{send_d.offsets[0], send_d.counts[0]},
                                                 recv_d.offsets[0]);
  Tensor send_host = host_mirror(send), recv_host = host_mirror(recv);
  auto inner = host_->all_to_all(send_host, send_d, recv_host, recv_d);
  return std::make_unique<StagedExchange>(std::move(inner), *copies_, send, send_host, ranges(send_d), recv,
                                          recv_host, ranges(recv_d));
}

std::unique_ptr<Exchange> StagedCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv,
                                                        int source) {
  if (send.device() == Device::cpu && recv.device() == Device::cpu) return host_->send_recv(send, dest, recv, source);
  require_contiguous(send, "staged send/recv");
  require_contiguous(recv, "staged send/recv");
  if (size() == 1)
    return std::make_unique<LocalDeviceExchange>(send, recv, Range{0, std::min(send.bytes(), recv.bytes())}, 0);
  Tensor send_host = host_mirror(send), recv_host = host_mirror(recv);
  auto inner = host_->send_recv(send_host, dest, recv_host, source);
  return std::make_unique<StagedExchange>(std::move(inner), *copies_, send, send_host,
                                          std::vector<Range>{{0, send.bytes()}}, recv, recv_host,
                                          std::vector<Range>{{0, recv.bytes()}});
}

std::unique_ptr<Exchange> StagedCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  if (all.device() == Device::cpu) return host_->all_gather_in_place(all, all_d);
  require_contiguous(all, "staged all-gather");
  if (size() == 1) return std::make_unique<LocalDeviceExchange>(all, all, Range{}, 0);  // it holds every part
  Tensor host = host_mirror(all);
  auto inner = host_->all_gather_in_place(host, all_d);
  // Out: this rank's part; in: every other rank's part (one mirror serves both directions).
  const size_t me = size_t(rank());
  std::vector<Range> others;
  for (size_t i = 0; i < all_d.counts.size(); ++i)
    if (i != me) others.push_back({all_d.offsets[i], all_d.counts[i]});
  return std::make_unique<StagedExchange>(std::move(inner), *copies_, all, host,
                                          std::vector<Range>{{all_d.offsets[me], all_d.counts[me]}}, all, host,
                                          std::move(others));
}

void StagedAllReduce::sum(Communicator& host, const Tensor& x, Stream& stream) {
  if (x.device() == Device::cpu || host.size() == 1) {
    host.all_reduce_sum(x, stream);
    return;
  }
  require_contiguous(x, "staged all-reduce");
  const cudaStream_t s = cuda::native_stream(stream);
  if (!mirror_ || mirror_->bytes() < x.bytes()) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    FRESCO_CUDA_CHECK(cudaStreamIsCapturing(s, &status));
    FRESCO_ASSERT(status == cudaStreamCaptureStatusNone,
                  "a host-staged all-reduce of " + x.describe() + " inside a CUDA graph capture (it waits on the host)");
    mirror_.reset();  // the smaller block first (its cudaFreeHost synchronizes the device anyway)
    mirror_ = pinned_host(x.bytes());
  }
  const Tensor mirror = Tensor::from_storage(mirror_, 0, x.shape(), x.dtype());
  FRESCO_CUDA_CHECK(cudaMemcpyAsync(mirror.raw(), x.raw(), x.bytes(), cudaMemcpyDeviceToHost, s));
  stream.synchronize();
  HostStream host_stream;
  host.all_reduce_sum(mirror, host_stream);
  FRESCO_CUDA_CHECK(cudaMemcpyAsync(x.raw(), mirror.raw(), x.bytes(), cudaMemcpyHostToDevice, s));
  stream.synchronize();  // the next call rewrites the mirror
}

void StagedCommunicator::all_reduce_sum(const Tensor& x, Stream& stream) { reduce_.sum(*host_, x, stream); }

}  // namespace fresco
