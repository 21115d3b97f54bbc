#include "mpi/comm/ucx_communicator.hpp"

#include <cstring>
#include <exception>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/ucx_exchange.hpp"
#include "mpi/comm/ucx_runtime.hpp"

namespace fresco {
namespace {

char* at(const Tensor& t, size_t offset) { return static_cast<char*>(t.raw()) + offset; }

void check_buffer(const Tensor& t, const std::string& what, const char* role) {
  FRESCO_ASSERT(t.defined(), what + ": " + role + " buffer is undefined");
  FRESCO_ASSERT(t.device() == Device::cpu, what + ": the UCX transport puts host memory, but the " + role +
                                               " buffer is " + t.describe());
  FRESCO_ASSERT(t.contiguous(), what + ": " + role + " buffer " + t.describe() + " is not contiguous");
}

void check_range(const Tensor& t, size_t offset, size_t bytes, const std::string& what, const char* role) {
  FRESCO_ASSERT(offset + bytes <= t.bytes(), what + ": " + role + " range [" + std::to_string(offset) + ", +" +
                                                 std::to_string(bytes) + ") exceeds " + t.describe());
}

void check_displacements(const Displacements& d, int size, const std::string& what) {
  FRESCO_ASSERT(int(d.counts.size()) == size && d.offsets.size() == d.counts.size(),
                what + ": one count and offset per rank expected");
}

}  // namespace

// ---- the communicator ---------------------------------------------------------------------

UcxCommunicator::UcxCommunicator(std::unique_ptr<MpiCommunicator> base)
    : LayeredCommunicator(std::move(base)), ucx_(std::make_unique<UcxRuntime>()) {
  ucp_config_t* config = nullptr;
  FRESCO_UCX_CHECK(ucp_config_read(nullptr, nullptr, &config));  // UCX_TLS, UCX_NET_DEVICES, ...
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AMO64;
  ucp_context_h context = nullptr;
  const ucs_status_t status = ucp_init(&params, config, &context);
  ucp_config_release(config);
  FRESCO_UCX_CHECK(status);
  ucx_->context.reset(context);

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // main and progress thread, one lock
  ucp_worker_h worker = nullptr;
  FRESCO_UCX_CHECK(ucp_worker_create(context, &worker_params, &worker));
  ucx_->worker.reset(worker);

  ucp_address_t* address = nullptr;
  size_t address_bytes = 0;
  FRESCO_UCX_CHECK(ucp_worker_get_address(worker, &address, &address_bytes));
  const std::vector<char> mine(reinterpret_cast<const char*>(address),
                               reinterpret_cast<const char*>(address) + address_bytes);
  ucp_worker_release_address(worker, address);
  const CommStats before = stats();  // set-up traffic is not a step's communication
  const std::vector<std::vector<char>> addresses = ucx_gather_blobs(*base_, mine);
  stats() = before;
  ucx_->endpoints.resize(size_t(size()));
  for (int p = 0; p < size(); ++p)
    if (p != rank())
      ucx_->endpoints[size_t(p)] = std::make_unique<UcxEndpoint>(
          worker, reinterpret_cast<const ucp_address_t*>(addresses[size_t(p)].data()));
  ucx_->start_progress_thread();
}

UcxCommunicator::~UcxCommunicator() {
  // Every rank's last exchange is complete before any endpoint closes (a flush may need the
  // peer's acknowledgement), and every close is done before any worker goes away.
  const bool healthy = std::uncaught_exceptions() == 0;
  auto agree = [&] {
    try {
      barrier();
    } catch (...) {
    }
  };
  if (!healthy) {
    // Peers may be hung with operations of ours still queued: tearing UCX down now can trip its
    // own assertions and turn the error being reported into a crash. The process is ending:
    // leave the handles to it.
    ucx_->stop_progress_thread();
    (void)ucx_.release();
    return;
  }
  agree();
  ucx_->stop_progress_thread();  // the closes below progress the worker themselves
  for (auto& endpoint : ucx_->endpoints)
    if (endpoint) endpoint->close(/*flush=*/true, std::max(deadline(), 1.0));
  agree();
  ucx_->endpoints.clear();
}

void UcxCommunicator::barrier() {
  base_->barrier_progressing(
      [this] {
        const auto guard = ucx_->lock();
        ucx_->progress();
      },
      describe());
}

std::unique_ptr<Exchange> UcxCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                      const Tensor& recv, const Displacements& recv_d) {
  const std::string what = "all-to-all";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  check_displacements(send_d, size(), what);
  check_displacements(recv_d, size(), what);
  ExchangeSpec spec(what, size_t(size()));
  spec.buffers = {send, recv};
  spec.region = recv.raw();
  spec.region_bytes = recv.bytes();
  for (int p = 0; p < size(); ++p) {
    const size_t i = size_t(p);
    check_range(send, send_d.offsets[i], send_d.counts[i], what, "send");
    check_range(recv, recv_d.offsets[i], recv_d.counts[i], what, "receive");
    if (p == rank()) continue;
    spec.send_from[i] = at(send, send_d.offsets[i]);
    spec.send_bytes[i] = send_d.counts[i];
    spec.expect_offset[i] = recv_d.offsets[i];
    spec.expect_bytes[i] = recv_d.counts[i];
  }
  const size_t me = size_t(rank());
  FRESCO_ASSERT(send_d.counts[me] == recv_d.counts[me], what + ": the counts for oneself differ");
  spec.copies.push_back({at(recv, recv_d.offsets[me]), at(send, send_d.offsets[me]), send_d.counts[me]});
  return make_ucx_exchange(*this, std::move(spec));
}

std::unique_ptr<Exchange> UcxCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv, int source) {
  const std::string what = "send/recv";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  FRESCO_ASSERT(dest >= 0 && dest < size() && source >= 0 && source < size(),
                what + ": peer out of range (dest " + std::to_string(dest) + ", source " + std::to_string(source) +
                    ", size " + std::to_string(size()) + ")");
  ExchangeSpec spec(what, size_t(size()));
  spec.buffers = {send, recv};
  if (dest == rank() && source == rank()) {
    FRESCO_ASSERT(send.bytes() == recv.bytes(), what + " to oneself with different sizes: " + send.describe() + " -> " +
                                                    recv.describe());
    spec.copies.push_back({recv.raw(), send.raw(), send.bytes()});
  } else {
    FRESCO_ASSERT(dest != rank() && source != rank(),
                  what + ": the UCX transport sends to oneself only as a whole (dest == source == rank)");
    spec.region = recv.raw();
    spec.region_bytes = recv.bytes();
    spec.send_from[size_t(dest)] = static_cast<const char*>(send.raw());
    spec.send_bytes[size_t(dest)] = send.bytes();
    spec.expect_bytes[size_t(source)] = recv.bytes();
  }
  return make_ucx_exchange(*this, std::move(spec));
}

std::unique_ptr<Exchange> UcxCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  const std::string what = "all-gather";
  check_buffer(all, what, "gather");
  check_displacements(all_d, size(), what);
  ExchangeSpec spec(what, size_t(size()));
  spec.buffers = {all};
  spec.region = all.raw();
  spec.region_bytes = all.bytes();
  const size_t me = size_t(rank());
  for (int p = 0; p < size(); ++p) {
    const size_t i = size_t(p);
    check_range(all, all_d.offsets[i], all_d.counts[i], what, "part");
    if (p == rank()) continue;
    spec.send_from[i] = at(all, all_d.offsets[me]);
    spec.send_bytes[i] = all_d.counts[me];
    spec.expect_offset[i] = all_d.offsets[i];
    spec.expect_bytes[i] = all_d.counts[i];
  }
  return make_ucx_exchange(*this, std::move(spec));
}

}  // namespace fresco
