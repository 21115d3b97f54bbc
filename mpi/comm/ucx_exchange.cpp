#include "mpi/comm/ucx_exchange.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>

#include "mpi/comm/staged_communicator.hpp"
#include "mpi/comm/ucx_communicator.hpp"
#include "mpi/comm/ucx_runtime.hpp"

namespace fresco {
namespace {

// A counter of the control block, written through UCX by a peer (or, for operations carried
// as messages, by this process's progress on the peer's behalf): read with acquire ordering, so
// the data put before it (ordered by the sender's fence) is visible once it is seen.
uint64_t load_counter(uint64_t& counter) {
  return std::atomic_ref<uint64_t>(counter).load(std::memory_order_acquire);
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

// Puts are issued by whichever thread first finds them possible: the main thread in start() and
// poll(), else the progress thread (UcxPending), e.g. while a staged round's data is still being
// copied from the GPU (start_when) or while the receiver has not yet opened its buffer.
class UcxExchange final : public Exchange, public GatedStart, private UcxPending {
 public:
  UcxExchange(UcxCommunicator& comm, ExchangeSpec spec) : comm_(comm), spec_(std::move(spec)) {
    UcxRuntime& ucx = comm.runtime();
    const size_t size = size_t(comm.size());
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
    const std::vector<std::vector<char>> blobs = ucx_gather_blobs(comm.base(), mine.serialize());
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
    after.synchronize();  // the puts read host memory: the producer's work must be complete
    begin_round({});
  }

  // The host-staged transport's start: the send buffers hold this round's data once `ready`
  // returns true (its copies from the GPU are done); the copy for oneself and the puts wait for
  // that, and the progress thread issues them if the main thread has not by then.
  void start_when(std::function<bool()> ready) override { begin_round(std::move(ready)); }

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
    if (failure_) std::rethrow_exception(failure_);  // met on the progress thread
    comm_.runtime().progress();
    if (advance()) comm_.runtime().remove_pending(this);
    if (!complete()) return false;
    started_ = false;
    return true;
  }

 private:
  void begin_round(std::function<bool()> ready) {
    FRESCO_ASSERT(!started_, spec_.what + " started again before finish()");
    const auto guard = comm_.runtime().lock();
    if (!released_) open_region();  // this rank's region is free for this epoch
    released_ = false;
    ++epoch_;
    started_ = true;
    ready_ = std::move(ready);
    data_ready_ = false;
    for (Peer& peer : peers_) peer.put_issued = peer.send_bytes == 0;
    // Counted here, on the main thread, although the progress thread may issue the puts.
    comm_.stats().bytes_sent += bytes_per_round_;
    comm_.runtime().progress();  // picks up readiness signals carried as messages (TCP)
    if (!advance()) comm_.runtime().add_pending(this);
  }

  // Under the lock: once the round's data is ready, the copy for oneself and the puts whose
  // receiver has opened its buffer. True once every put of the round is issued.
  bool advance() {
    if (!data_ready_) {
      if (ready_ && !ready_()) return false;
      ready_ = nullptr;
      data_ready_ = true;
      for (const ExchangeSpec::Copy& c : spec_.copies)
        if (c.bytes && c.dst != c.src) std::memmove(c.dst, c.src, c.bytes);
    }
    issue_puts();
    return std::all_of(peers_.begin(), peers_.end(), [](const Peer& peer) { return peer.put_issued; });
  }

  // The progress thread's turn (UcxPending): a failure is kept for the main thread's poll().
  bool issue() noexcept override {
    try {
      return advance();
    } catch (...) {
      failure_ = std::current_exception();
      return true;
    }
  }

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
      bytes_per_round_ += double(peer.send_bytes);
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
    comm_.runtime().remove_pending(this);
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
    const WaitClock::time_point start = WaitClock::now();
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
    const auto guard = comm_.runtime().lock();  // the progress thread may be issuing puts
    std::ostringstream s;
    MpiCommunicator& base = comm_.base();
    s << "rank " << base.rank() << " (world " << base.world_rank(base.rank()) << ") waited "
      << format_seconds(waited) << " s for " << spec_.what << " of " << comm_.describe() << "; outstanding:";
    const char* separator = " ";
    if (!data_ready_) s << separator << "this rank's puts (its data's copy from the GPU never completed)", separator = ", ";
    for (size_t p = 0; p < peers_.size(); ++p) {
      const std::string who = "rank " + std::to_string(p) + " (world " + std::to_string(base.world_rank(int(p))) + ")";
      if (data_ready_ && !peers_[p].put_issued) s << separator << "put to " << who << " (its buffer was never opened)", separator = ", ";
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
  double bytes_per_round_ = 0;    // sent to other ranks
  uint64_t epoch_ = 0;
  bool started_ = false;
  std::function<bool()> ready_;  // this round's data is ready to put (staged: on the host)
  bool data_ready_ = true;
  std::exception_ptr failure_;   // met by the progress thread
  bool released_ = false;  // the region was opened for epoch_ + 1 by release()
};

}  // namespace

std::unique_ptr<Exchange> make_ucx_exchange(UcxCommunicator& comm, ExchangeSpec spec) {
  return std::make_unique<UcxExchange>(comm, std::move(spec));
}

}  // namespace fresco
