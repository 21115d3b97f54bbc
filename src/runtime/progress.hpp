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

  // Called by the rank that finished image `index` of width x height pixels in `steps` steps.
  void image_done(int64_t index, int64_t width, int64_t height, int64_t steps, double seconds_per_step,
                  double seconds, bool ok);
  // Called by the group leader for an image a stop signal left undone (abandoned or not started).
  void image_stopped(int64_t index);
  // Rank 0: print the reports that have arrived. Other ranks: nothing.
  void poll();
  // Waits until rank 0 has every report and every send has completed.
  void finish();
  // Rank 0, after finish(): images reported done, and the sums of their steps and seconds.
  int64_t images_done() const { return done_; }
  double steps_done() const { return steps_; }
  double seconds_done() const { return total_seconds_; }

 private:
  // index, s/step, seconds, ok (1, 0 failed, -1 stopped), rank, width, height, steps
  using Report = std::array<double, 8>;
  void send(const Report& r);
  void print(const Report& r);
  const MpiSession& mpi_;
  int64_t todo_, skipped_, received_ = 0;
  int workers_;
  double total_seconds_ = 0.0;
  int64_t done_ = 0;
  double steps_ = 0.0;
  std::deque<Report> outgoing_;          // buffers of sends still in flight
  std::deque<MPI_Request> requests_;
};

}  // namespace fresco
