#include "mpi/comm/mpi_context.hpp"

#include <cstdio>
#include <iostream>

namespace fresco {

void mpi_fail(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw MpiError(std::string("MPI call failed: ") + std::string(text, size_t(len)) + " [" + call +
                 " at " + source_location(file, line) + "]");
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // FUNNELED: only the main thread calls MPI; OpenMP threads compute.
  FRESCO_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes, checked by FRESCO_MPI_CHECK, instead of aborting inside MPI.
  FRESCO_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  FRESCO_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  FRESCO_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node;
  FRESCO_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  FRESCO_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  FRESCO_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  FRESCO_MPI_CHECK(MPI_Comm_free(&node));
}

MpiSession::~MpiSession() { MPI_Finalize(); }

void MpiSession::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps the compiler and readers sure
}

void collective_setup(const MpiSession& mpi, const std::function<void()>& step) {
  int failed_code = 0;
  std::string message;
  try {
    step();
  } catch (const CollectiveFailure&) {
    // A nested collective_setup (a step of which one rank does a part, such as rank 0 encoding
    // generate's prompts) agreed and reported already: every rank has this failure at once.
    throw;
  } catch (const Error& e) {
    failed_code = e.exit_code();
    message = e.what();
  }
  // The lowest failing rank reports: MPI_MINLOC over (failed ? rank : size).
  int mine = failed_code ? mpi.rank() : mpi.size();
  int first = 0;
  FRESCO_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, mpi.world()));
  if (first == mpi.size()) return;
  int code = failed_code;
  FRESCO_MPI_CHECK(MPI_Bcast(&code, 1, MPI_INT, first, mpi.world()));
  if (mpi.rank() == first) {
    std::cerr << "fresco: error";
    if (mpi.size() > 1) std::cerr << " (rank " << first << ")";
    std::cerr << ": " << message << std::endl;
  }
  throw CollectiveFailure(message, code);
}

}  // namespace fresco
