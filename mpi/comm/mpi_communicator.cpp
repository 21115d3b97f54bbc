#include "mpi/comm/mpi_communicator.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <numeric>
#include <sstream>
#include <thread>

#include "mpi/comm/host_wait.hpp"
#include "mpi/comm/mpi_context.hpp"

namespace fresco {

Displacements Displacements::packed(std::vector<size_t> counts) {
  Displacements d;
  d.offsets.resize(counts.size());
  std::exclusive_scan(counts.begin(), counts.end(), d.offsets.begin(), size_t(0));
  d.counts = std::move(counts);
  return d;
}

size_t Displacements::total() const {
  size_t end = 0;
  for (size_t i = 0; i < counts.size(); ++i) end = std::max(end, offsets[i] + counts[i]);
  return end;
}

namespace {

using Clock = WaitClock;

// Tags keep the kinds of point-to-point traffic of one communicator apart; within a kind,
// messages match in the order the exchanges are started (the same on every rank).
enum Tag : int { kAllToAll = 101, kSendRecv = 102, kAllGather = 103, kHostGather = 104 };

int message_size(size_t bytes) {
  if (bytes > size_t(INT_MAX))
    throw ApiError("a single MPI message of " + std::to_string(bytes) +
                   " bytes exceeds MPI's 2 GiB count limit; use more ranks per image");
  return int(bytes);
}

// One planned point-to-point message.
struct Message {
  bool send = false;
  void* buf = nullptr;
  int bytes = 0;
  int peer = 0;
  int tag = 0;
};

// A local copy (the part a rank sends itself).
struct LocalCopy {
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
};

// Posted messages of one operation and the host wait for them (deadline, back-off, stats).
class Posted {
 public:
  static constexpr double kGraceSeconds = 2.0;

  Posted(MpiCommunicator& comm, const std::string& what) : comm_(comm), what_(what) {}

  void post(const std::vector<Message>& messages) {
    FRESCO_ASSERT(requests_.empty(), what_ + ": posted again while still in flight");
    requests_.assign(messages.size(), MPI_REQUEST_NULL);
    messages_ = &messages;
    // Receives first, so a peer's eager send finds its match posted.
    for (size_t i = 0; i < messages.size(); ++i) {
      const Message& m = messages[i];
      if (!m.send)
        FRESCO_MPI_CHECK(MPI_Irecv(m.buf, m.bytes, MPI_BYTE, m.peer, m.tag, comm_.comm(), &requests_[i]));
    }
    for (size_t i = 0; i < messages.size(); ++i) {
      const Message& m = messages[i];
      if (m.send) {
        FRESCO_MPI_CHECK(MPI_Isend(m.buf, m.bytes, MPI_BYTE, m.peer, m.tag, comm_.comm(), &requests_[i]));
        comm_.stats().bytes_sent += double(m.bytes);
      }
    }
  }

  // Non-blocking: true when every message has completed (or nothing is posted).
  bool test() {
    if (requests_.empty()) return true;
    int flag = 0;
    FRESCO_MPI_CHECK(MPI_Testall(int(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE));
    if (flag) requests_.clear();
    return flag != 0;
  }

  // Blocks until every message has completed; throws CommTimeout past the deadline.
  // `deadline` < 0: the communicator's.
  void wait(double deadline = -1) {
    if (requests_.empty()) return;
    const Clock::time_point start = Clock::now();
    if (deadline < 0) deadline = comm_.deadline();
    for (;;) {
      if (test()) break;
      const double waited = seconds_since(start);
      if (deadline > 0 && waited > deadline) {
        comm_.stats().wait_seconds += waited;
        comm_.mark_failed();
        throw CommTimeout(timeout_message(waited));
      }
      back_off(waited);
    }
    comm_.stats().wait_seconds += seconds_since(start);
  }

  // Waits like wait() but never throws; past the deadline (or at once when the communicator
  // has already failed) the remaining messages are abandoned: receives cancelled, requests
  // freed. For destructors. While an exception unwinds the stack the wait is cut to a short
  // grace period: a peer may be blocked on something this rank will never do, and the error
  // being reported ends the job anyway.
  void complete_quietly() noexcept {
    if (requests_.empty()) return;
    try {
      if (!comm_.failed()) {
        double limit = comm_.deadline();
        if (std::uncaught_exceptions() > 0) limit = limit > 0 ? std::min(limit, kGraceSeconds) : kGraceSeconds;
        wait(limit);
        return;
      }
    } catch (...) {
    }
    for (size_t i = 0; i < requests_.size(); ++i) {
      if (requests_[i] == MPI_REQUEST_NULL) continue;
      if (!(*messages_)[i].send) MPI_Cancel(&requests_[i]);
      MPI_Request_free(&requests_[i]);
    }
    requests_.clear();
  }

 private:
  std::string timeout_message(double waited) {
    // Which messages are still outstanding (a peer that never posted its side).
    std::vector<std::string> peers;
    for (size_t i = 0; i < requests_.size(); ++i) {
      if (requests_[i] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      MPI_Test(&requests_[i], &flag, MPI_STATUS_IGNORE);  // frees it if complete
      if (flag) continue;
      const Message& m = (*messages_)[i];
      peers.push_back(std::string(m.send ? "send to" : "receive from") + " rank " + std::to_string(m.peer) +
                      " (world " + std::to_string(comm_.world_rank(m.peer)) + ")");
    }
    std::ostringstream s;
    s << "rank " << comm_.rank() << " (world " << comm_.world_rank(comm_.rank()) << ") waited "
      << format_seconds(waited) << " s for " << what_ << " of " << comm_.describe();
    if (!peers.empty()) {
      s << "; outstanding:";
      for (size_t i = 0; i < peers.size(); ++i) s << (i ? ", " : " ") << peers[i];
    }
    s << ": a peer is hung or dead (deadline " << format_seconds(comm_.deadline())
      << " s, --comm-timeout)";
    return s.str();
  }

  MpiCommunicator& comm_;
  std::string what_;
  std::vector<MPI_Request> requests_;
  const std::vector<Message>* messages_ = nullptr;
};

// A planned exchange: messages and local copies on buffers checked once, replayed.
class MpiExchange final : public Exchange {
 public:
  MpiExchange(MpiCommunicator& comm, std::string what, std::vector<Tensor> buffers,
              std::vector<Message> messages, std::vector<LocalCopy> copies)
      : what_(std::move(what)),
        buffers_(std::move(buffers)),
        messages_(std::move(messages)),
        copies_(std::move(copies)),
        posted_(comm, what_) {}
  ~MpiExchange() override { posted_.complete_quietly(); }

  void start(Stream& after) override {
    FRESCO_ASSERT(!started_, what_ + " started again before finish()");
    after.synchronize();  // MPI reads host memory: the producer's work must be complete
    posted_.post(messages_);
    for (const LocalCopy& c : copies_)
      if (c.bytes && c.dst != c.src) std::memmove(c.dst, c.src, c.bytes);
    started_ = true;
  }

  void finish(Stream& /*before*/) override {
    // Host buffers: once the messages completed, any later work on `before` sees them.
    if (!started_) return;
    posted_.wait();
    started_ = false;
  }

  bool poll() override { return !started_ || posted_.test(); }

 private:
  std::string what_;
  std::vector<Tensor> buffers_;  // keeps the bound memory alive
  std::vector<Message> messages_;
  std::vector<LocalCopy> copies_;
  Posted posted_;
  bool started_ = false;
};

char* at(const Tensor& t, size_t offset) { return static_cast<char*>(t.raw()) + offset; }

// The checks every exchange buffer must pass (host, contiguous); `role` names it in the error.
void check_buffer(const Tensor& t, const std::string& what, const char* role) {
  FRESCO_ASSERT(t.defined(), what + ": " + role + " buffer is undefined");
  FRESCO_ASSERT(t.device() == Device::cpu,
                what + ": the MPI transport reads host memory, but the " + role + " buffer is " +
                    t.describe() + " (stage device buffers on the host, or use a device transport)");
  FRESCO_ASSERT(t.contiguous(), what + ": " + role + " buffer " + t.describe() + " is not contiguous");
}

void check_range(const Tensor& t, size_t offset, size_t bytes, const std::string& what, const char* role) {
  FRESCO_ASSERT(offset + bytes <= t.bytes(), what + ": " + role + " range [" + std::to_string(offset) + ", +" +
                                                 std::to_string(bytes) + ") exceeds " + t.describe());
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string label) : comm_(comm), label_(std::move(label)) {
  FRESCO_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  FRESCO_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  FRESCO_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  // World ranks of the members (local: group translation needs no communication).
  MPI_Group mine, world;
  FRESCO_MPI_CHECK(MPI_Comm_group(comm_, &mine));
  FRESCO_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> ranks(size_t(size_), 0);
  std::iota(ranks.begin(), ranks.end(), 0);
  world_ranks_.assign(size_t(size_), 0);
  FRESCO_MPI_CHECK(MPI_Group_translate_ranks(mine, size_, ranks.data(), world, world_ranks_.data()));
  MPI_Group_free(&mine);
  MPI_Group_free(&world);
  std::ostringstream s;
  s << label_ << ": mpi ranks {";
  for (int r = 0; r < size_; ++r) s << (r ? "," : "") << world_ranks_[size_t(r)];
  s << "} of world";
  description_ = s.str();
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split(MPI_Comm parent, int color, int key,
                                                        const std::string& label) {
  MPI_Comm comm;
  FRESCO_MPI_CHECK(MPI_Comm_split(parent, color, key, &comm));
  return std::make_unique<MpiCommunicator>(comm, label);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::self(const std::string& label) {
  MPI_Comm comm;
  FRESCO_MPI_CHECK(MPI_Comm_dup(MPI_COMM_SELF, &comm));
  return std::make_unique<MpiCommunicator>(comm, label);
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
}

std::unique_ptr<Exchange> MpiCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                      const Tensor& recv, const Displacements& recv_d) {
  const std::string what = "all-to-all";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  FRESCO_ASSERT(int(send_d.counts.size()) == size_ && int(recv_d.counts.size()) == size_ &&
                    send_d.offsets.size() == send_d.counts.size() &&
                    recv_d.offsets.size() == recv_d.counts.size(),
                what + ": one count and offset per rank expected");
  std::vector<Message> messages;
  for (int p = 0; p < size_; ++p) {
    const size_t i = size_t(p);
    check_range(send, send_d.offsets[i], send_d.counts[i], what, "send");
    check_range(recv, recv_d.offsets[i], recv_d.counts[i], what, "receive");
    if (p == rank_) continue;
    if (recv_d.counts[i])
      messages.push_back({false, at(recv, recv_d.offsets[i]), message_size(recv_d.counts[i]), p, kAllToAll});
    if (send_d.counts[i])
      messages.push_back({true, at(send, send_d.offsets[i]), message_size(send_d.counts[i]), p, kAllToAll});
  }
  const size_t self = size_t(rank_);
  FRESCO_ASSERT(send_d.counts[self] == recv_d.counts[self], what + ": the counts for oneself differ");
  std::vector<LocalCopy> copies{{at(recv, recv_d.offsets[self]), at(send, send_d.offsets[self]), send_d.counts[self]}};
  return std::make_unique<MpiExchange>(*this, what, std::vector<Tensor>{send, recv}, std::move(messages),
                                       std::move(copies));
}

std::unique_ptr<Exchange> MpiCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv,
                                                     int source) {
  const std::string what = "send/recv";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  FRESCO_ASSERT(dest >= 0 && dest < size_ && source >= 0 && source < size_,
                what + ": peer out of range (dest " + std::to_string(dest) + ", source " +
                    std::to_string(source) + ", size " + std::to_string(size_) + ")");
  std::vector<Message> messages;
  std::vector<LocalCopy> copies;
  if (dest == rank_ && source == rank_) {
    FRESCO_ASSERT(send.bytes() == recv.bytes(), what + " to oneself with different sizes: " + send.describe() +
                                                    " -> " + recv.describe());
    copies.push_back({recv.raw(), send.raw(), send.bytes()});
  } else {
    if (recv.bytes()) messages.push_back({false, recv.raw(), message_size(recv.bytes()), source, kSendRecv});
    if (send.bytes()) messages.push_back({true, send.raw(), message_size(send.bytes()), dest, kSendRecv});
  }
  return std::make_unique<MpiExchange>(*this, what, std::vector<Tensor>{send, recv}, std::move(messages),
                                       std::move(copies));
}

std::unique_ptr<Exchange> MpiCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  const std::string what = "all-gather";
  check_buffer(all, what, "gather");
  FRESCO_ASSERT(int(all_d.counts.size()) == size_ && all_d.offsets.size() == all_d.counts.size(),
                what + ": one count and offset per rank expected");
  const size_t me = size_t(rank_);
  std::vector<Message> messages;
  for (int p = 0; p < size_; ++p) {
    const size_t i = size_t(p);
    check_range(all, all_d.offsets[i], all_d.counts[i], what, "part");
    if (p != rank_ && all_d.counts[i])
      messages.push_back({false, at(all, all_d.offsets[i]), message_size(all_d.counts[i]), p, kAllGather});
  }
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && all_d.counts[me])
      messages.push_back({true, at(all, all_d.offsets[me]), message_size(all_d.counts[me]), p, kAllGather});
  return std::make_unique<MpiExchange>(*this, what, std::vector<Tensor>{all}, std::move(messages),
                                       std::vector<LocalCopy>{});
}

void MpiCommunicator::all_reduce_sum(const Tensor& x, Stream& stream) {
  FRESCO_ASSERT(x.defined() && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
                "all_reduce_sum: f32 or f64 expected, got " +
                    (x.defined() ? x.describe() : std::string("an undefined tensor")));
  if (size_ == 1) return;  // the sum over one rank: nothing to move, on any device
  FRESCO_ASSERT(x.device() == Device::cpu && x.contiguous(),
                "all_reduce_sum: the MPI transport needs a contiguous host tensor, got " + x.describe());
  stream.synchronize();  // the producer's values must be in host memory
  const MPI_Datatype type = x.dtype() == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
  const Clock::time_point start = Clock::now();
  FRESCO_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x.raw(), message_size(size_t(x.numel())), type, MPI_SUM, comm_));
  stats_.wait_seconds += seconds_since(start);
  if (size_ > 1) stats_.bytes_sent += double(x.bytes());  // this rank's contribution
}

void MpiCommunicator::host_all_gather(const void* send, void* recv, const Displacements& recv_d) {
  const std::string what = "host all-gather";
  FRESCO_ASSERT(int(recv_d.counts.size()) == size_ && recv_d.offsets.size() == recv_d.counts.size(),
                what + ": one count and offset per rank expected");
  const size_t me = size_t(rank_), mine = recv_d.counts[me];
  char* out = static_cast<char*>(recv);
  std::vector<Message> messages;
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && recv_d.counts[size_t(p)])
      messages.push_back({false, out + recv_d.offsets[size_t(p)], message_size(recv_d.counts[size_t(p)]), p,
                          kHostGather});
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && mine) messages.push_back({true, const_cast<void*>(send), message_size(mine), p, kHostGather});
  Posted posted(*this, what);
  posted.post(messages);
  if (mine) std::memmove(out + recv_d.offsets[me], send, mine);
  try {
    posted.wait();
  } catch (...) {
    posted.complete_quietly();  // the buffers belong to the caller: leave no message behind
    throw;
  }
}

void MpiCommunicator::barrier() { barrier_progressing(nullptr, describe()); }

void MpiCommunicator::barrier_progressing(const std::function<void()>& progress, const std::string& who) {
  // Non-blocking barrier, so that a dead peer ends in CommTimeout rather than a hang.
  MPI_Request request;
  FRESCO_MPI_CHECK(MPI_Ibarrier(comm_, &request));
  const Clock::time_point start = Clock::now();
  for (;;) {
    int flag = 0;
    FRESCO_MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
    if (flag) break;
    if (progress) progress();
    const double waited = seconds_since(start);
    if (deadline() > 0 && waited > deadline()) {
      stats_.wait_seconds += waited;
      failed_ = true;
      MPI_Request_free(&request);
      throw CommTimeout("rank " + std::to_string(rank_) + " (world " + std::to_string(world_rank(rank_)) +
                        ") waited " + format_seconds(waited) + " s for a barrier of " + who +
                        ": a peer is hung or dead (deadline " + format_seconds(deadline()) +
                        " s, --comm-timeout)");
    }
    back_off(waited);
  }
  stats_.wait_seconds += seconds_since(start);
}

void MpiCommunicator::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return
}

}  // namespace fresco
