// MPI for Fresco: the process-wide MPI session (one owner: init in the constructor,
// finalize in the destructor), FRESCO_MPI_CHECK for every MPI call, and the collective error
// agreement used around set-up so that an error every rank hits is reported once.
#pragma once

#include <mpi.h>

#include <functional>
#include <string>

#include "src/core/error.hpp"

namespace fresco {

class MpiError : public ApiError {
 public:
  using ApiError::ApiError;
};

[[noreturn]] void mpi_fail(int code, const char* call, const char* file, int line);

#define FRESCO_MPI_CHECK(call)                                                     \
  do {                                                                             \
    const int fresco_mpi_rc_ = (call);                                             \
    if (fresco_mpi_rc_ != MPI_SUCCESS) ::fresco::mpi_fail(fresco_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm world() const { return MPI_COMM_WORLD; }
  // Ranks on this node (shared-memory split), for thread counts and later GPU selection.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Aborts every rank: the way out of an error that only some ranks saw.
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// Error raised on some rank inside collective_setup, already reported by the rank that owns it.
class CollectiveFailure : public Error {
 public:
  CollectiveFailure(const std::string& what, int code) : Error(what), code_(code) {}
  int exit_code() const override { return code_; }

 private:
  int code_;
};

// Runs `step` on every rank, then agrees: if any rank threw a fresco::Error, the lowest such
// rank prints its message (once for the job) and every rank throws CollectiveFailure with that
// rank's exit code, so the job ends cleanly with one report. Use for set-up where all ranks
// read the same inputs.
void collective_setup(const MpiSession& mpi, const std::function<void()>& step);

}  // namespace fresco
