// The images of a batch handed out one at a time to the data-parallel groups (docs/reliability.md,
// "A slow, stopped or dead group"). A fixed share per group leaves a slow group's images to it
// alone and a stopped group's images undone while the others wait; a shared counter lets every
// group take the next image when it is free, so mixed image sizes balance themselves and the
// images a lost group never took are taken by the others.
//
// One MPI window, held by world rank 0 for the whole batch (one passive-target epoch,
// MPI_Win_lock_all): a counter, the next entry to hand out, and one state per entry: who took it
// and whether it finished. Group leaders fetch-and-add the counter and record their entries;
// rank 0 reads the states to name what a lost group held. Every access is a request-based
// atomic (MPI_Rget_accumulate) waited on with a sleeping poll under the deadline, so a rank 0 that
// no longer answers ends the job with CommTimeout instead of blocking a flush forever.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/plans/parallel_layout.hpp"

namespace fresco {

class WorkQueue {
 public:
  // Collective over the world. `entries`: what to hand out, in order (the same list on every
  // rank); `deadline`: the longest one access to the window may wait (seconds; <= 0: none).
  WorkQueue(const MpiSession& mpi, const ParallelLayout& layout, std::vector<int64_t> entries, double deadline);
  // Frees the window; while an exception unwinds (a peer may be lost, and the job is about to
  // be aborted) it leaves it, since MPI_Win_free is collective and would wait on that peer.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Group leader: the next entry for its group, recorded as taken by it; nullopt once every
  // entry is handed out.
  std::optional<int64_t> take();
  // Group leader: `entry` (taken by its group) is finished, published or failed.
  void finish(int64_t entry);
  // Group leader, after every denoising step: its group is alive. The ranks waiting at the end
  // of the batch count their deadline from the last beat they saw, so a group computing a long
  // last image is not taken for a lost one.
  void beat();
  // Any rank: the beats so far, from every group.
  int64_t beats() const;

  // Rank 0, once no group takes or finishes entries any more: the entries nobody took (a stop
  // signal ended the groups first).
  std::vector<int64_t> untaken() const;
  // Rank 0: one line per entry taken but never finished: "image 3 (held by group 1, rank(s) 1)".
  std::vector<std::string> unfinished() const;

  // Collective, on the normal path: ends the epoch and frees the window (checked).
  void close();

 private:
  // Entry states, read atomically from rank 0's window.
  std::vector<int64_t> states() const;
  // One atomic on rank 0's window: `op` of `value` into `count` int64 from `slot`, the previous
  // values into `previous`; waited on under the deadline.
  void atomic(const int64_t* value, int64_t* previous, int count, int64_t slot, MPI_Op op) const;

  const MpiSession& mpi_;
  std::vector<int64_t> entries_;
  std::vector<int> group_of_rank_;  // every world rank's group (rank 0 names a lost group's ranks)
  int group_ = 0;
  double deadline_;
  MPI_Win win_ = MPI_WIN_NULL;
};

}  // namespace fresco
