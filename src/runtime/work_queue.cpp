#include "src/runtime/work_queue.hpp"

#include <algorithm>
#include <exception>

#include "src/runtime/validation.hpp"

namespace fresco {
namespace {
// Rank 0's window, int64 slots: the counter (the position of the next entry to hand out), the
// heartbeat (steps done by any group), then one state per entry: 0 not taken, g + 1 taken by
// group g, -(g + 1) finished by group g.
constexpr int64_t kCounterSlot = 0;
constexpr int64_t kBeatSlot = 1;
constexpr int64_t kFirstState = 2;
}  // namespace

WorkQueue::WorkQueue(const MpiSession& mpi, const ParallelLayout& layout, std::vector<int64_t> entries,
                     double deadline)
    : mpi_(mpi), entries_(std::move(entries)), group_(layout.group_index()), deadline_(deadline) {
  group_of_rank_.resize(size_t(mpi_.size()));
  FRESCO_MPI_CHECK(MPI_Allgather(&group_, 1, MPI_INT, group_of_rank_.data(), 1, MPI_INT, mpi_.world()));
  const MPI_Aint bytes = mpi_.rank() == 0 ? MPI_Aint(kFirstState + int64_t(entries_.size())) * MPI_Aint(sizeof(int64_t)) : 0;
  int64_t* base = nullptr;
  // MPI_Win_allocate (not create): on one node the shared-memory component serves the atomics
  // directly, without rank 0 having to make progress.
  FRESCO_MPI_CHECK(MPI_Win_allocate(bytes, int(sizeof(int64_t)), MPI_INFO_NULL, mpi_.world(), &base, &win_));
  if (mpi_.rank() == 0) std::fill_n(base, kFirstState + int64_t(entries_.size()), int64_t(0));
  // One epoch for the whole batch; rank 0's zeros reach the window's public copy (Win_sync)
  // before any leader's first access (the barrier).
  FRESCO_MPI_CHECK(MPI_Win_lock_all(0, win_));
  FRESCO_MPI_CHECK(MPI_Win_sync(win_));
  FRESCO_MPI_CHECK(MPI_Barrier(mpi_.world()));
}

WorkQueue::~WorkQueue() {
  if (win_ == MPI_WIN_NULL || std::uncaught_exceptions() > 0) return;
  try {
    close();
  } catch (const std::exception&) {
    // A destructor must not throw; close() on the normal path reports its own failures.
  }
}

void WorkQueue::close() {
  if (win_ == MPI_WIN_NULL) return;
  FRESCO_MPI_CHECK(MPI_Win_unlock_all(win_));
  FRESCO_MPI_CHECK(MPI_Win_free(&win_));
  win_ = MPI_WIN_NULL;
}

void WorkQueue::atomic(const int64_t* value, int64_t* previous, int count, int64_t slot, MPI_Op op) const {
  MPI_Request request;
  // The request completes once the previous values are here, so the operation has been applied
  // at rank 0 (what a flush after MPI_Fetch_and_op would ensure), but its wait has a deadline.
  FRESCO_MPI_CHECK(MPI_Rget_accumulate(value, count, MPI_INT64_T, previous, count, MPI_INT64_T, 0, MPI_Aint(slot),
                                       count, MPI_INT64_T, op, win_, &request));
  wait_sleeping(request, deadline_, [&](double waited) {
    return "rank " + std::to_string(mpi_.rank()) + " waited " + std::to_string(int(waited)) +
           " s for the batch's work queue on rank 0: rank 0 is hung or dead (deadline " +
           std::to_string(deadline_) + " s, --comm-timeout)";
  });
}

std::optional<int64_t> WorkQueue::take() {
  const int64_t one = 1;
  int64_t position = 0;
  atomic(&one, &position, 1, kCounterSlot, MPI_SUM);
  if (position >= int64_t(entries_.size())) return std::nullopt;
  const int64_t taken = group_ + 1;
  int64_t before = 0;
  atomic(&taken, &before, 1, kFirstState + position, MPI_REPLACE);
  return entries_[size_t(position)];
}

void WorkQueue::beat() {
  const int64_t one = 1;
  int64_t before = 0;
  atomic(&one, &before, 1, kBeatSlot, MPI_SUM);
}

int64_t WorkQueue::beats() const {
  const int64_t none = 0;
  int64_t now = 0;
  atomic(&none, &now, 1, kBeatSlot, MPI_NO_OP);
  return now;
}

void WorkQueue::finish(int64_t entry) {
  const auto at = std::find(entries_.begin(), entries_.end(), entry);
  FRESCO_ASSERT(at != entries_.end(), "WorkQueue::finish: image " + std::to_string(entry) + " is not in the queue");
  const int64_t finished = -(group_ + 1);
  int64_t before = 0;
  atomic(&finished, &before, 1, kFirstState + (at - entries_.begin()), MPI_REPLACE);
}

std::vector<int64_t> WorkQueue::states() const {
  // MPI_NO_OP: an atomic read (the origin is not read, but must not overlap the result).
  std::vector<int64_t> s(entries_.size(), 0), unused(entries_.size(), 0);
  if (!s.empty()) atomic(unused.data(), s.data(), int(s.size()), kFirstState, MPI_NO_OP);
  return s;
}

std::vector<int64_t> WorkQueue::untaken() const {
  const std::vector<int64_t> s = states();
  std::vector<int64_t> out;
  for (size_t k = 0; k < s.size(); ++k)
    if (s[k] == 0) out.push_back(entries_[k]);
  return out;
}

std::vector<std::string> WorkQueue::unfinished() const {
  const std::vector<int64_t> s = states();
  std::vector<std::string> out;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] <= 0) continue;
    const int group = int(s[k] - 1);
    std::string ranks;
    for (size_t r = 0; r < group_of_rank_.size(); ++r)
      if (group_of_rank_[r] == group) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
    out.push_back("image " + std::to_string(entries_[k]) + " (held by group " + std::to_string(group) + ", rank(s) " +
                  ranks + ")");
  }
  return out;
}

}  // namespace fresco
