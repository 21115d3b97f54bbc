// Typed errors of Fresco. Code throws; `main` catches once, reports (rank, what, where) and
// ends the job with a non-zero status. Each foreign API family has one checking macro that
// names the failed call, the file and the line (FRESCO_MPI_CHECK, FRESCO_H5_CHECK here;
// CUDA/NCCL/UCX macros live beside their wrappers).
#pragma once

#include <stdexcept>
#include <string>

namespace fresco {

// Base of every error Fresco reports itself.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // Process exit status for this kind of error.
  virtual int exit_code() const { return 1; }
};

// The user's input is wrong: an option, a file's contents, a shape. Exit status 2.
class InputError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// A file or directory could not be read or written.
class IoError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

// A foreign library call failed (MPI, HDF5, BLAS, CUDA...).
class ApiError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 4; }
};

// A computation produced something invalid (non-finite values, a backend without an op).
class ComputeError : public Error {
 public:
  static constexpr int kExitCode = 5;  // also the status of a batch with failed images
  using Error::Error;
  int exit_code() const override { return kExitCode; }
};

// "file.cpp:123" for messages.
std::string source_location(const char* file, int line);

// Throws InputError with the message when the condition does not hold.
inline void require_input(bool ok, const std::string& message) {
  if (!ok) throw InputError(message);
}

}  // namespace fresco

// Internal invariant: a violated check is a bug in Fresco, not bad input.
#define FRESCO_ASSERT(cond, msg)                                                            \
  do {                                                                                     \
    if (!(cond))                                                                           \
      throw ::fresco::Error(std::string("internal error: ") + (msg) + " (" #cond ") at " + \
                            ::fresco::source_location(__FILE__, __LINE__));                \
  } while (0)
