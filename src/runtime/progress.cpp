#include "src/runtime/progress.hpp"

#include <cstdio>

namespace fresco {
namespace {
constexpr int kProgressTag = 7001;
}

BatchProgress::BatchProgress(const MpiSession& mpi, int64_t todo, int64_t skipped, int workers)
    : mpi_(mpi), todo_(todo), skipped_(skipped), workers_(workers) {
  if (mpi_.rank() == 0 && skipped_ > 0)
    std::printf("fresco: %lld image(s) already done, %lld to compute\n", (long long)skipped_,
                (long long)todo_);
}

BatchProgress::~BatchProgress() {
  // Sends still pending at destruction (an error path) are cancelled rather than leaked.
  for (MPI_Request& r : requests_) {
    MPI_Cancel(&r);
    MPI_Request_free(&r);
  }
}

void BatchProgress::image_done(int64_t index, int64_t width, int64_t height, int64_t steps, double seconds_per_step,
                               double seconds, bool ok) {
  send({double(index), seconds_per_step, seconds, ok ? 1.0 : 0.0, double(mpi_.rank()), double(width), double(height),
        double(steps)});
}

void BatchProgress::image_stopped(int64_t index) {
  send({double(index), 0.0, 0.0, -1.0, double(mpi_.rank()), 0.0, 0.0, 0.0});
}

void BatchProgress::send(const Report& r) {
  if (mpi_.rank() == 0) {
    print(r);
    return;
  }
  outgoing_.push_back(r);
  requests_.emplace_back();
  FRESCO_MPI_CHECK(MPI_Isend(outgoing_.back().data(), int(r.size()), MPI_DOUBLE, 0, kProgressTag,
                             mpi_.world(), &requests_.back()));
}

void BatchProgress::poll() {
  if (mpi_.rank() != 0) return;
  for (;;) {
    int flag = 0;
    MPI_Status status;
    FRESCO_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kProgressTag, mpi_.world(), &flag, &status));
    if (!flag) return;
    Report r;
    FRESCO_MPI_CHECK(MPI_Recv(r.data(), int(r.size()), MPI_DOUBLE, status.MPI_SOURCE,
                              kProgressTag, mpi_.world(), MPI_STATUS_IGNORE));
    print(r);
  }
}

void BatchProgress::print(const Report& r) {
  ++received_;
  if (r[3] < 0) {  // left undone by a stop signal: no time to count, no line of its own
    --todo_;
    --received_;
    return;
  }
  total_seconds_ += r[2];
  const double per_image = total_seconds_ / double(received_);
  const double eta = per_image * double(todo_ - received_) / double(workers_);
  if (r[3] != 0.0) {
    ++done_;
    steps_ += r[7];
    std::printf("fresco: image %lld/%lld done (img_%lld, %lldx%lld, %lld steps, rank %d): %.3f s/step, ETA %.0f s\n",
                (long long)(skipped_ + received_), (long long)(skipped_ + todo_), (long long)r[0], (long long)r[5],
                (long long)r[6], (long long)r[7], int(r[4]), r[1], eta);
  }
  else
    std::printf("fresco: image %lld/%lld FAILED (img_%lld, rank %d), see the error above\n",
                (long long)(skipped_ + received_), (long long)(skipped_ + todo_),
                (long long)r[0], int(r[4]));
  std::fflush(stdout);
}

void BatchProgress::finish() {
  if (mpi_.rank() == 0) {
    while (received_ < todo_) {
      Report r;
      FRESCO_MPI_CHECK(MPI_Recv(r.data(), int(r.size()), MPI_DOUBLE, MPI_ANY_SOURCE, kProgressTag,
                                mpi_.world(), MPI_STATUS_IGNORE));
      print(r);
    }
  }
  for (MPI_Request& r : requests_) FRESCO_MPI_CHECK(MPI_Wait(&r, MPI_STATUS_IGNORE));
  requests_.clear();
  outgoing_.clear();
}

}  // namespace fresco
