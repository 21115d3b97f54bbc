#include "mpi/comm/ucx_communicator.hpp"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/ucx_check.hpp"

namespace fresco {

// ---- checks and owners ------------------------------------------------------------------

void ucx_fail(ucs_status_t status, const char* call, const char* file, int line) {
  throw ApiError(std::string("UCX call failed: ") + ucs_status_string(status) + " [" + call + " at " +
                 source_location(file, line) + "]");
}

UcxMemory::UcxMemory(ucp_context_h context, void* address, size_t bytes) : context_(context) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = address;
  params.length = bytes;
  FRESCO_UCX_CHECK(ucp_mem_map(context, &params, &memory_));
}

UcxMemory& UcxMemory::operator=(UcxMemory&& other) noexcept {
  if (this != &other) {
    release();
    context_ = std::exchange(other.context_, nullptr);
    memory_ = std::exchange(other.memory_, nullptr);
  }
  return *this;
}

void UcxMemory::release() noexcept {
  if (memory_) ucp_mem_unmap(context_, memory_);
  memory_ = nullptr;
}

std::vector<char> UcxMemory::packed_rkey() const {
  void* buffer = nullptr;
  size_t bytes = 0;
  FRESCO_UCX_CHECK(ucp_rkey_pack(context_, memory_, &buffer, &bytes));
  const UcxPackedRkey owner(buffer);
  const char* begin = static_cast<const char*>(buffer);
  return std::vector<char>(begin, begin + bytes);
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, s < 10 ? "%.1f" : "%.0f", s);
  return text;
}

// A short wait polls; a long one must not burn a core that other ranks may share.
void back_off(double waited) {
  if (waited < 1e-3)
    sched_yield();
  else
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(1e-3, waited / 50)));
}

// A counter of the control block, written by a peer through UCX (CPU atomics on shared
// memory, or this process's own progress for TCP): read with acquire ordering, so the data
// put before it (ordered by the sender's fence) is visible once it is seen.
uint64_t load_counter(uint64_t& counter) {
  return std::atomic_ref<uint64_t>(counter).load(std::memory_order_acquire);
}

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
    const Clock::time_point start = Clock::now();
    while (ucp_request_check_status(request) == UCS_INPROGRESS && seconds_since(start) < limit_seconds)
      ucp_worker_progress(worker_);
    if (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_request_cancel(worker_, request);
    ucp_request_free(request);
  }

 private:
  ucp_worker_h worker_;
  ucp_ep_h endpoint_ = nullptr;
};

}  // namespace

// The counters peers write into, one block per exchange. Owned by the communicator rather than
// the exchange: a peer's readiness signal (sent by release()) may still be in flight when the
// exchange is destroyed, so every block stays mapped until all endpoints have been flushed.
struct UcxControlBlock {
  std::unique_ptr<uint64_t[]> counters;
  UcxMemory memory;  // declared after `counters`: unmapped before they are freed
};

// The UCX state of one communicator. A progress thread drives the worker while the rank
// computes or waits in MPI: over TCP a "completed" send may still sit in this process's socket
// buffer, and a peer's put carried as messages lands only when this side progresses; without
// it, a rank that enters an MPI collective right after finish() can starve its peer's last
// transfer. Every UCX call of the communicator holds `mutex` (the worker is SERIALIZED).
struct UcxRuntime {
  UcxContext context;
  UcxWorker worker;
  std::vector<std::unique_ptr<UcxEndpoint>> endpoints;  // by peer rank; none for oneself
  std::vector<std::unique_ptr<UcxControlBlock>> control_blocks;  // unmapped first
  std::mutex mutex;
  std::thread progress_thread;
  std::atomic<bool> stopping{false};

  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex); }

  void start_progress_thread() {
    progress_thread = std::thread([this] {
      while (!stopping.load(std::memory_order_relaxed)) {
        {
          const std::lock_guard<std::mutex> guard(mutex);
          while (ucp_worker_progress(worker.get()) != 0) {
          }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));  // a poll, not a busy core
      }
    });
  }
  void stop_progress_thread() {
    stopping = true;
    if (progress_thread.joinable()) progress_thread.join();
  }

  // A zeroed, mapped block of `count` counters that lives as long as the communicator.
  UcxControlBlock& new_control_block(size_t count) {
    auto block = std::make_unique<UcxControlBlock>();
    block->counters.reset(new uint64_t[count]());
    block->memory = UcxMemory(context.get(), block->counters.get(), count * sizeof(uint64_t));
    control_blocks.push_back(std::move(block));
    return *control_blocks.back();
  }

  ucp_ep_h endpoint(int peer) const { return endpoints[size_t(peer)]->get(); }
  void progress() const { ucp_worker_progress(worker.get()); }  // the caller holds the lock
  ~UcxRuntime() { stop_progress_thread(); }
};

namespace {

// Collective over `base`: every rank's `mine` bytes, by rank.
std::vector<std::vector<char>> gather_blobs(MpiCommunicator& base, const std::vector<char>& mine) {
  const size_t size = size_t(base.size());
  const uint64_t my_bytes = mine.size();
  std::vector<uint64_t> bytes(size);
  base.host_all_gather(&my_bytes, bytes.data(), Displacements::packed(std::vector<size_t>(size, sizeof(uint64_t))));
  std::vector<size_t> counts(bytes.begin(), bytes.end());
  const Displacements d = Displacements::packed(counts);
  std::vector<char> all(d.total());
  base.host_all_gather(mine.data(), all.data(), d);
  std::vector<std::vector<char>> blobs;
  for (size_t r = 0; r < size; ++r)
    blobs.emplace_back(all.begin() + ptrdiff_t(d.offsets[r]), all.begin() + ptrdiff_t(d.offsets[r] + d.counts[r]));
  return blobs;
}

// What one rank publishes about an exchange: where its receive region and control block are,
// their remote keys, and for each peer where that peer's data lands and how many bytes it is.
struct ExchangeRecord {
  uint64_t region_address = 0, control_address = 0;
  std::vector<uint64_t> expect_offset, expect_bytes;  // by sending peer
  std::vector<char> region_rkey, control_rkey;

  std::vector<char> serialize() const {
    std::vector<uint64_t> words{region_address, control_address, region_rkey.size(), control_rkey.size()};
    words.insert(words.end(), expect_offset.begin(), expect_offset.end());
    words.insert(words.end(), expect_bytes.begin(), expect_bytes.end());
    std::vector<char> out(words.size() * sizeof(uint64_t));
    std::memcpy(out.data(), words.data(), out.size());
    out.insert(out.end(), region_rkey.begin(), region_rkey.end());
    out.insert(out.end(), control_rkey.begin(), control_rkey.end());
    return out;
  }
  static ExchangeRecord parse(const std::vector<char>& blob, size_t size) {
    const size_t header = (4 + 2 * size) * sizeof(uint64_t);
    FRESCO_ASSERT(blob.size() >= header, "UCX exchange set-up: a peer's record is truncated");
    std::vector<uint64_t> words(4 + 2 * size);
    std::memcpy(words.data(), blob.data(), header);
    ExchangeRecord r;
    r.region_address = words[0];
    r.control_address = words[1];
    const size_t region_key = words[2], control_key = words[3];
    FRESCO_ASSERT(blob.size() == header + region_key + control_key, "UCX exchange set-up: a peer's record has the wrong size");
    r.expect_offset.assign(words.begin() + 4, words.begin() + 4 + ptrdiff_t(size));
    r.expect_bytes.assign(words.begin() + 4 + ptrdiff_t(size), words.end());
    r.region_rkey.assign(blob.begin() + ptrdiff_t(header), blob.begin() + ptrdiff_t(header + region_key));
    r.control_rkey.assign(blob.begin() + ptrdiff_t(header + region_key), blob.end());
    return r;
  }
};

UcxRkey unpack_rkey(ucp_ep_h endpoint, const std::vector<char>& packed) {
  ucp_rkey_h rkey = nullptr;
  FRESCO_UCX_CHECK(ucp_ep_rkey_unpack(endpoint, packed.data(), &rkey));
  return UcxRkey(rkey);
}

// The plan of an exchange before its set-up: what this rank sends to and expects from each peer.
struct ExchangeSpec {
  std::string what;
  std::vector<Tensor> buffers;            // keeps the bound memory alive
  void* region = nullptr;                 // where peers put into this rank
  size_t region_bytes = 0;
  std::vector<const char*> send_from;     // by peer: first byte this rank sends it
  std::vector<size_t> send_bytes;         // by peer
  std::vector<uint64_t> expect_offset;    // by peer: where in `region` its bytes land
  std::vector<uint64_t> expect_bytes;     // by peer
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  std::vector<Copy> copies;  // the part for oneself

  explicit ExchangeSpec(std::string name, size_t size)
      : what(std::move(name)), send_from(size, nullptr), send_bytes(size, 0), expect_offset(size, 0), expect_bytes(size, 0) {}
};

class UcxExchange final : public Exchange {
 public:
  UcxExchange(UcxCommunicator& comm, ExchangeSpec spec) : comm_(comm), spec_(std::move(spec)) {
    UcxRuntime& ucx = comm.runtime();
    const size_t size = size_t(comm.size()), me = size_t(comm.rank());
    ExchangeRecord mine;
    {
      const auto guard = ucx.lock();
      // control_[p]: epochs whose data peer p has put here; control_[size + p]: epochs for
      // which peer p (a receiver of this rank's data) has opened its buffer.
      UcxControlBlock& control = ucx.new_control_block(2 * size);
      control_ = control.counters.get();
      if (spec_.region_bytes > 0) region_memory_ = UcxMemory(ucx.context.get(), spec_.region, spec_.region_bytes);
      mine.region_address = reinterpret_cast<uintptr_t>(spec_.region);
      mine.control_address = reinterpret_cast<uintptr_t>(control_);
      mine.expect_offset = spec_.expect_offset;
      mine.expect_bytes = spec_.expect_bytes;
      if (spec_.region_bytes > 0) mine.region_rkey = region_memory_.packed_rkey();
      mine.control_rkey = control.memory.packed_rkey();
    }
    const CommStats before = comm.stats();  // set-up traffic is not a step's communication
    const std::vector<std::vector<char>> blobs = gather_blobs(comm.base(), mine.serialize());
    comm.stats() = before;

    auto guard = ucx.lock();
    try {
      connect(blobs);
    } catch (...) {
      release_handles();  // under the lock, not in the member destructors
      throw;
    }
  }

  ~UcxExchange() override {
    complete_quietly();
    const auto guard = comm_.runtime().lock();
    release_handles();
  }

  void start(Stream& after) override {
    FRESCO_ASSERT(!started_, spec_.what + " started again before finish()");
    after.synchronize();  // the puts read host memory: the producer's work must be complete
    const auto guard = comm_.runtime().lock();
    if (!released_) open_region();  // this rank's region is free for this epoch
    released_ = false;
    ++epoch_;
    started_ = true;
    for (const ExchangeSpec::Copy& c : spec_.copies)
      if (c.bytes && c.dst != c.src) std::memmove(c.dst, c.src, c.bytes);
    for (Peer& peer : peers_) peer.put_issued = peer.send_bytes == 0;
    comm_.runtime().progress();  // picks up readiness signals carried as messages (TCP)
    issue_puts();
  }

  // The consumer is done with the last epoch's data: the senders may put the next epoch's now,
  // during this rank's compute, instead of after its next start().
  void release(Stream& after) override {
    FRESCO_ASSERT(!started_, spec_.what + ": release() between start() and finish()");
    if (released_) return;
    after.synchronize();
    const auto guard = comm_.runtime().lock();
    open_region();
    released_ = true;
  }

  void finish(Stream& /*before*/) override {
    if (!started_) return;
    wait(comm_.deadline());
  }

  bool poll() override {
    if (!started_) return true;
    const auto guard = comm_.runtime().lock();
    comm_.runtime().progress();
    issue_puts();
    if (!complete()) return false;
    started_ = false;
    return true;
  }

 private:
  // Unpacks the peers' remote keys from their records (under the runtime's lock).
  void connect(const std::vector<std::vector<char>>& blobs) {
    UcxRuntime& ucx = comm_.runtime();
    const size_t size = size_t(comm_.size()), me = size_t(comm_.rank());
    peers_.resize(size);
    for (size_t p = 0; p < size; ++p) {
      if (p == me) continue;
      const ExchangeRecord theirs = ExchangeRecord::parse(blobs[p], size);
      Peer& peer = peers_[p];
      peer.send_bytes = spec_.send_bytes[p];
      peer.receives = spec_.expect_bytes[p] > 0;
      FRESCO_ASSERT(theirs.expect_bytes[me] == peer.send_bytes,
                    spec_.what + ": rank " + std::to_string(me) + " sends " + std::to_string(peer.send_bytes) +
                        " bytes to rank " + std::to_string(p) + ", which expects " +
                        std::to_string(theirs.expect_bytes[me]) + " (exchanges created in different orders?)");
      const ucp_ep_h endpoint = ucx.endpoint(int(p));
      if (peer.send_bytes > 0) {
        peer.send_from = spec_.send_from[p];
        peer.remote_data = theirs.region_address + theirs.expect_offset[me];
        peer.region_rkey = unpack_rkey(endpoint, theirs.region_rkey);
      }
      if (peer.send_bytes > 0 || peer.receives) {
        peer.remote_arrived = theirs.control_address + me * sizeof(uint64_t);
        peer.remote_ready = theirs.control_address + (size + me) * sizeof(uint64_t);
        peer.control_rkey = unpack_rkey(endpoint, theirs.control_rkey);
      }
    }
  }

  // Cancels what is still in flight and drops the remote keys and the region's mapping (under
  // the runtime's lock).
  void release_handles() noexcept {
    for (void* request : requests_) {
      if (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_request_cancel(comm_.runtime().worker.get(), request);
      ucp_request_free(request);
    }
    requests_.clear();
    peers_.clear();
    region_memory_ = UcxMemory();
  }

  struct Peer {
    size_t send_bytes = 0;
    bool receives = false;       // this rank expects data from the peer
    const char* send_from = nullptr;
    uint64_t remote_data = 0;    // where the bytes land in the peer's region
    uint64_t remote_arrived = 0; // the peer's counter of this rank's puts
    uint64_t remote_ready = 0;   // the peer's counter of this rank's open epochs
    UcxRkey region_rkey, control_rkey;
    bool put_issued = true;
  };

  // Tells every sender "this rank's region is free for the next epoch".
  void open_region() {
    for (size_t p = 0; p < peers_.size(); ++p)
      if (peers_[p].receives) signal(int(p), peers_[p].remote_ready);
  }

  // Atomic add of 1 to a peer's control counter (non-fetching: nothing to wait for but local
  // completion).
  void signal(int p, uint64_t remote_counter) {
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
    params.datatype = ucp_dt_make_contig(sizeof(uint64_t));
    track(FRESCO_UCX_REQUEST(ucp_atomic_op_nbx(comm_.runtime().endpoint(p), UCP_ATOMIC_OP_ADD, &kOne, 1,
                                               remote_counter, peers_[size_t(p)].control_rkey.get(), &params)));
  }

  // Puts whose receiver has opened its buffer for this epoch: data, fence, arrival counter.
  void issue_puts() {
    UcxRuntime& ucx = comm_.runtime();
    for (size_t p = 0; p < peers_.size(); ++p) {
      Peer& peer = peers_[p];
      if (peer.put_issued || load_counter(control_[peers_.size() + p]) < epoch_) continue;
      ucp_request_param_t params{};
      params.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE;
      params.memory_type = UCS_MEMORY_TYPE_HOST;
      track(FRESCO_UCX_REQUEST(ucp_put_nbx(ucx.endpoint(int(p)), peer.send_from, peer.send_bytes,
                                           peer.remote_data, peer.region_rkey.get(), &params)));
      // Orders the data before the counter on this endpoint: the receiver that sees the
      // counter sees the data.
      FRESCO_UCX_CHECK(ucp_worker_fence(ucx.worker.get()));
      signal(int(p), peer.remote_arrived);
      comm_.stats().bytes_sent += double(peer.send_bytes);
      peer.put_issued = true;
    }
  }

  void track(void* request) {
    if (request) requests_.push_back(request);
  }

  // Frees the requests that completed; throws on one that failed.
  bool requests_done() {
    for (size_t i = 0; i < requests_.size();) {
      const ucs_status_t status = ucp_request_check_status(requests_[i]);
      if (status == UCS_INPROGRESS) {
        ++i;
        continue;
      }
      ucp_request_free(requests_[i]);
      requests_[i] = requests_.back();
      requests_.pop_back();
      if (status != UCS_OK) ucx_fail(status, "a UCX put or atomic of this exchange", __FILE__, __LINE__);
    }
    return requests_.empty();
  }

  bool complete() {
    bool done = requests_done();
    for (size_t p = 0; p < peers_.size(); ++p)
      done = done && peers_[p].put_issued && (!peers_[p].receives || load_counter(control_[p]) >= epoch_);
    return done;
  }

  // Progresses until complete; CommTimeout past `deadline` seconds (<= 0: none).
  void wait(double deadline) {
    const Clock::time_point start = Clock::now();
    while (!poll()) {
      const double waited = seconds_since(start);
      if (deadline > 0 && waited > deadline) {
        comm_.stats().wait_seconds += waited;
        comm_.base().mark_failed();
        throw CommTimeout(timeout_message(waited));
      }
      back_off(waited);
    }
    comm_.stats().wait_seconds += seconds_since(start);
  }

  std::string timeout_message(double waited) {
    std::ostringstream s;
    MpiCommunicator& base = comm_.base();
    s << "rank " << base.rank() << " (world " << base.world_rank(base.rank()) << ") waited "
      << format_seconds(waited) << " s for " << spec_.what << " of " << comm_.describe() << "; outstanding:";
    const char* separator = " ";
    for (size_t p = 0; p < peers_.size(); ++p) {
      const std::string who = "rank " + std::to_string(p) + " (world " + std::to_string(base.world_rank(int(p))) + ")";
      if (!peers_[p].put_issued) s << separator << "put to " << who << " (its buffer was never opened)", separator = ", ";
      if (peers_[p].receives && load_counter(control_[p]) < epoch_) s << separator << "data from " << who, separator = ", ";
    }
    if (!requests_.empty()) s << separator << requests_.size() << " put(s) or signal(s) in flight";
    s << " (epoch " << epoch_ << "; counters: data/open";
    for (size_t p = 0; p < peers_.size(); ++p)
      s << " " << load_counter(control_[p]) << "/" << load_counter(control_[peers_.size() + p]);
    s << ")";
    s << ": a peer is hung or dead (deadline " << format_seconds(comm_.deadline()) << " s, --comm-timeout)";
    return s.str();
  }

  // For the destructor: completes a started epoch within the deadline (a short grace while an
  // exception unwinds, none once the communicator has failed), then abandons what is left.
  void complete_quietly() noexcept {
    try {
      if (started_ && !comm_.base().failed()) {
        double limit = comm_.deadline();
        if (std::uncaught_exceptions() > 0) limit = limit > 0 ? std::min(limit, 2.0) : 2.0;
        wait(limit);
      }
    } catch (...) {
    }
    started_ = false;
  }

  static constexpr uint64_t kOne = 1;  // operand of the counter increments
  UcxCommunicator& comm_;
  ExchangeSpec spec_;
  uint64_t* control_;  // [2 * size] counters written by peers (a block of the communicator's)
  UcxMemory region_memory_;
  std::vector<Peer> peers_;
  std::vector<void*> requests_;  // puts and signals not yet complete locally
  uint64_t epoch_ = 0;
  bool started_ = false;
  bool released_ = false;  // the region was opened for epoch_ + 1 by release()
};

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
    : base_(std::move(base)), ucx_(std::make_unique<UcxRuntime>()) {
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
  const std::vector<std::vector<char>> addresses = gather_blobs(*base_, mine);
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

void UcxCommunicator::set_deadline(double seconds) {
  Communicator::set_deadline(seconds);
  base_->set_deadline(seconds);
}

void UcxCommunicator::barrier() {
  MPI_Request request;
  FRESCO_MPI_CHECK(MPI_Ibarrier(base_->comm(), &request));
  const Clock::time_point start = Clock::now();
  for (;;) {
    int flag = 0;
    FRESCO_MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
    if (flag) break;
    {
      const auto guard = ucx_->lock();
      ucx_->progress();
    }
    const double waited = seconds_since(start);
    if (deadline() > 0 && waited > deadline()) {
      stats().wait_seconds += waited;
      base_->mark_failed();
      MPI_Request_free(&request);
      throw CommTimeout("rank " + std::to_string(rank()) + " (world " + std::to_string(base_->world_rank(rank())) +
                        ") waited " + format_seconds(waited) + " s for a barrier of " + describe() +
                        ": a peer is hung or dead (deadline " + format_seconds(deadline()) + " s, --comm-timeout)");
    }
    back_off(waited);
  }
  stats().wait_seconds += seconds_since(start);
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
  return std::make_unique<UcxExchange>(*this, std::move(spec));
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
  return std::make_unique<UcxExchange>(*this, std::move(spec));
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
  return std::make_unique<UcxExchange>(*this, std::move(spec));
}

}  // namespace fresco
