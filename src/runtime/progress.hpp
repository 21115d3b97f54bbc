// Progress of a data-parallel batch. Every rank reports each finished image to rank 0 with a
// non-blocking send; rank 0 drains the reports between its own steps (poll) and prints
// "image k/N", seconds per step and an ETA. finish() collects the rest.
#pragma once

#include <array>
#include <deque>
#include <string>

#include "mpi/comm/mpi_context.hpp"

namespace fresco {

class BatchProgress {
 public:
  // `todo` images are computed in this run by `workers` groups of ranks working in parallel,
  // `skipped` were already done.
  BatchProgress(const MpiSession& mpi, int64_t todo, int64_t skipped, int workers);
  ~BatchProgress();
  BatchProgress(const BatchProgress&) = delete;
  BatchProgress& operator=(const BatchProgress&) = delete;

  // Called by the rank that finished image `index` (status "ok" or a short failure reason).
  void image_done(int64_t index, double seconds_per_step, double seconds, bool ok);
  // Called by the group leader for an image a stop signal left undone (abandoned or not started).
  void image_stopped(int64_t index);
  // Rank 0: print the reports that have arrived. Other ranks: nothing.
  void poll();
  // Waits until rank 0 has every report and every send has completed.
  void finish();

 private:
  using Report = std::array<double, 5>;  // index, s/step, seconds, ok (1, 0 failed, -1 stopped), rank
  void send(const Report& r);
  void print(const Report& r);
  const MpiSession& mpi_;
  int64_t todo_, skipped_, received_ = 0;
  int workers_;
  double total_seconds_ = 0.0;
  std::deque<Report> outgoing_;          // buffers of sends still in flight
  std::deque<MPI_Request> requests_;
};

}  // namespace fresco
