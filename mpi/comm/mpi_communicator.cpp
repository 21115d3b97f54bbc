#include "mpi/comm/mpi_communicator.hpp"

#include <chrono>
#include <climits>
#include <cstring>
#include <numeric>

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

// Tags keep the three kinds of point-to-point traffic of one communicator apart.
enum Tag : int { kAllToAll = 101, kSendRecv = 102, kAllGather = 103 };

int message_size(size_t bytes) {
  if (bytes > size_t(INT_MAX))
    throw ApiError("a single MPI message of " + std::to_string(bytes) +
                   " bytes exceeds MPI's 2 GiB count limit; use more ranks per image");
  return int(bytes);
}

// Point-to-point requests completed together; the wait time goes to the owner's stats.
class MpiRequest final : public Request {
 public:
  explicit MpiRequest(CommStats& stats) : stats_(stats) {}
  ~MpiRequest() override {
    if (!requests_.empty()) MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  void post_send(const void* buf, size_t bytes, int peer, int tag, MPI_Comm comm) {
    requests_.emplace_back();
    FRESCO_MPI_CHECK(MPI_Isend(buf, message_size(bytes), MPI_BYTE, peer, tag, comm, &requests_.back()));
    stats_.bytes_sent += double(bytes);
  }
  void post_recv(void* buf, size_t bytes, int peer, int tag, MPI_Comm comm) {
    requests_.emplace_back();
    FRESCO_MPI_CHECK(MPI_Irecv(buf, message_size(bytes), MPI_BYTE, peer, tag, comm, &requests_.back()));
  }
  void wait() override {
    if (requests_.empty()) return;
    const auto start = std::chrono::steady_clock::now();
    FRESCO_MPI_CHECK(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    requests_.clear();
  }
  bool test() override {
    if (requests_.empty()) return true;
    int done = 0;
    FRESCO_MPI_CHECK(MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE));
    if (done) requests_.clear();
    return done != 0;
  }

 private:
  CommStats& stats_;
  std::vector<MPI_Request> requests_;
};

const char* at(const void* base, size_t offset) { return static_cast<const char*>(base) + offset; }
char* at(void* base, size_t offset) { return static_cast<char*>(base) + offset; }

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string label) : comm_(comm), label_(std::move(label)) {
  FRESCO_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  FRESCO_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  FRESCO_MPI_CHECK(MPI_Comm_size(comm_, &size_));
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

std::unique_ptr<Request> MpiCommunicator::all_to_all_start(const void* send,
                                                           const Displacements& send_d, void* recv,
                                                           const Displacements& recv_d) {
  FRESCO_ASSERT(int(send_d.counts.size()) == size_ && int(recv_d.counts.size()) == size_,
                "all_to_all: one count per rank expected");
  auto req = std::make_unique<MpiRequest>(stats_);
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && recv_d.counts[size_t(p)])
      req->post_recv(at(recv, recv_d.offsets[size_t(p)]), recv_d.counts[size_t(p)], p, kAllToAll, comm_);
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && send_d.counts[size_t(p)])
      req->post_send(at(send, send_d.offsets[size_t(p)]), send_d.counts[size_t(p)], p, kAllToAll, comm_);
  const size_t self = size_t(rank_);
  FRESCO_ASSERT(send_d.counts[self] == recv_d.counts[self], "all_to_all: self counts differ");
  std::memcpy(at(recv, recv_d.offsets[self]), at(send, send_d.offsets[self]), send_d.counts[self]);
  return req;
}

std::unique_ptr<Request> MpiCommunicator::send_recv_start(const void* send, size_t send_bytes,
                                                          int dest, void* recv, size_t recv_bytes,
                                                          int source) {
  auto req = std::make_unique<MpiRequest>(stats_);
  if (dest == rank_ && source == rank_) {
    FRESCO_ASSERT(send_bytes == recv_bytes, "send_recv to oneself with different sizes");
    std::memmove(recv, send, send_bytes);
    return req;
  }
  if (recv_bytes) req->post_recv(recv, recv_bytes, source, kSendRecv, comm_);
  if (send_bytes) req->post_send(send, send_bytes, dest, kSendRecv, comm_);
  return req;
}

std::unique_ptr<Request> MpiCommunicator::all_gather_start(const void* send, void* recv,
                                                           const Displacements& recv_d) {
  FRESCO_ASSERT(int(recv_d.counts.size()) == size_, "all_gather: one count per rank expected");
  auto req = std::make_unique<MpiRequest>(stats_);
  const size_t mine = recv_d.counts[size_t(rank_)];
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && recv_d.counts[size_t(p)])
      req->post_recv(at(recv, recv_d.offsets[size_t(p)]), recv_d.counts[size_t(p)], p, kAllGather, comm_);
  for (int p = 0; p < size_; ++p)
    if (p != rank_ && mine) req->post_send(send, mine, p, kAllGather, comm_);
  std::memmove(at(recv, recv_d.offsets[size_t(rank_)]), send, mine);
  return req;
}

namespace {
template <typename T>
void timed_all_reduce(MPI_Comm comm, T* data, size_t count, MPI_Datatype type, CommStats& stats,
                      int size) {
  const auto start = std::chrono::steady_clock::now();
  FRESCO_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, message_size(count), type, MPI_SUM, comm));
  stats.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (size > 1) stats.bytes_sent += double(count * sizeof(T));  // this rank's contribution
}
}  // namespace

void MpiCommunicator::all_reduce_sum(float* data, size_t count) {
  timed_all_reduce(comm_, data, count, MPI_FLOAT, stats_, size_);
}

void MpiCommunicator::all_reduce_sum(double* data, size_t count) {
  timed_all_reduce(comm_, data, count, MPI_DOUBLE, stats_, size_);
}

void MpiCommunicator::barrier() {
  const auto start = std::chrono::steady_clock::now();
  FRESCO_MPI_CHECK(MPI_Barrier(comm_));
  stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace fresco
