// The UCX state behind a UcxCommunicator (ucx_communicator.hpp): one owner per handle (context,
// worker, endpoints, the control blocks peers write into) and the progress thread, plus the
// host-wait helpers its exchanges and barrier share. Internal to the UCX transport.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mpi/comm/host_wait.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/comm/ucx_check.hpp"

namespace fresco {

// Host waits: seconds_since, format_seconds, back_off (mpi/comm/host_wait.hpp).
// Collective over `base`: every rank's `mine` bytes, by rank (set-up: worker addresses,
// exchange records).
std::vector<std::vector<char>> ucx_gather_blobs(MpiCommunicator& base, const std::vector<char>& mine);

// An endpoint to one peer. Closed gracefully (flushed) by close(), else forcibly when destroyed.
class UcxEndpoint {
 public:
  UcxEndpoint(ucp_worker_h worker, const ucp_address_t* peer_address) : worker_(worker) {
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    params.address = peer_address;
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    FRESCO_UCX_CHECK(ucp_ep_create(worker, &params, &endpoint_));
  }
  ~UcxEndpoint() { close(/*flush=*/false, 0); }
  UcxEndpoint(const UcxEndpoint&) = delete;
  UcxEndpoint& operator=(const UcxEndpoint&) = delete;
  ucp_ep_h get() const { return endpoint_; }

  // Flushes outstanding operations (flush) or cancels them, progressing for at most
  // `limit_seconds`; the endpoint is released either way.
  void close(bool flush, double limit_seconds) noexcept {
    if (!endpoint_) return;
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = flush ? 0 : UCP_EP_CLOSE_FLAG_FORCE;
    const ucs_status_ptr_t request = ucp_ep_close_nbx(endpoint_, &params);
    endpoint_ = nullptr;
    if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
    const WaitClock::time_point start = WaitClock::now();
    while (ucp_request_check_status(request) == UCS_INPROGRESS && seconds_since(start) < limit_seconds)
      ucp_worker_progress(worker_);
    if (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_request_cancel(worker_, request);
    ucp_request_free(request);
  }

 private:
  ucp_worker_h worker_;
  ucp_ep_h endpoint_ = nullptr;
};

// The counters peers write into, one block per exchange. Owned by the communicator rather than
// the exchange: a peer's readiness signal (sent by release()) may still be in flight when the
// exchange is destroyed, so every block stays mapped until all endpoints have been flushed.
struct UcxControlBlock {
  std::unique_ptr<uint64_t[]> counters;
  UcxMemory memory;  // declared after `counters`: unmapped before they are freed
};

// An exchange with puts of a started round still to issue: its data is not yet on the host (a
// staged round whose copies from the GPU are in flight) or a receiver has not yet opened its
// buffer. The progress thread calls issue() until it returns true, so each put goes as soon as
// it can, while the main thread computes, rather than at the main thread's next poll.
class UcxPending {
 public:
  // Under the runtime's lock; true once every put of the round is issued (or it failed: the
  // exchange reports that on the main thread).
  virtual bool issue() noexcept = 0;

 protected:
  ~UcxPending() = default;
};

// The UCX state of one communicator. A progress thread drives the worker while the rank
// computes or waits in MPI: over TCP a "completed" send may still sit in this process's socket
// buffer, and a peer's put carried as messages lands only when this side progresses; without
// it, a rank that enters an MPI collective right after finish() can starve its peer's last
// transfer. It also issues the puts of the pending exchanges. Every UCX call of the
// communicator holds `mutex` (the worker is SERIALIZED).
struct UcxRuntime {
  UcxContext context;
  UcxWorker worker;
  std::vector<std::unique_ptr<UcxEndpoint>> endpoints;  // by peer rank; none for oneself
  std::vector<std::unique_ptr<UcxControlBlock>> control_blocks;  // unmapped first
  std::vector<UcxPending*> pending;  // exchanges with puts to issue (under `mutex`)
  std::mutex mutex;
  std::thread progress_thread;
  std::atomic<bool> stopping{false};

  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex); }

  void start_progress_thread();
  void stop_progress_thread();

  // A zeroed, mapped block of `count` counters that lives as long as the communicator.
  UcxControlBlock& new_control_block(size_t count);

  // Under the lock. An exchange leaves the list before it is destroyed.
  void add_pending(UcxPending* exchange) {
    if (std::find(pending.begin(), pending.end(), exchange) == pending.end()) pending.push_back(exchange);
  }
  void remove_pending(UcxPending* exchange) { std::erase(pending, exchange); }

  ucp_ep_h endpoint(int peer) const { return endpoints[size_t(peer)]->get(); }
  void progress() const { ucp_worker_progress(worker.get()); }  // the caller holds the lock
  ~UcxRuntime() { stop_progress_thread(); }
};

}  // namespace fresco
