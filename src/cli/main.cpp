// fresco: distributed inference of diffusion transformers. `main` owns the MPI session,
// dispatches the subcommand, and is the one place where errors are reported: set-up errors
// once for the job (collective agreement), run-time errors by the rank that hit them, which
// then aborts the job.
#include <cstdio>
#include <iostream>
#include <optional>

#include "fresco/version.hpp"
#include "src/cli/commands.hpp"

namespace {

using namespace fresco;
using namespace fresco::cli;

void print_overview(const std::vector<Command>& commands) {
  std::printf("fresco %s: distributed inference of diffusion transformers\n\n", kVersion);
  std::printf("usage: [mpiexec -n N] fresco COMMAND [options]   (fresco COMMAND --help)\n\ncommands:\n");
  for (const auto& c : commands) std::printf("  %-13s %s\n", c.name.c_str(), c.summary.c_str());
}

std::string join_command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i) s += ' ';
    s += argv[i];
  }
  return s;
}

int run(const MpiSession& mpi, int argc, char** argv) {
  const auto commands = all_commands();
  const std::string name = argc > 1 ? argv[1] : "";
  if (name.empty() || name == "--help" || name == "-h" || name == "help") {
    if (mpi.rank() == 0) print_overview(commands);
    return name.empty() ? 2 : 0;
  }
  if (name == "--version") {
    if (mpi.rank() == 0) std::printf("fresco %s\n", kVersion);
    return 0;
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands)
    if (c.name == name) cmd = &c;

  const RunContext ctx{mpi, join_command_line(argc, argv)};
  std::function<int()> work;
  bool help_only = false;
  collective_setup(mpi, [&] {
    if (!cmd) throw InputError("unknown command '" + name + "' (see fresco --help)");
    po::variables_map vm;
    std::string help;
    if (!parse_options(*cmd, std::vector<std::string>(argv + 2, argv + argc), vm, help)) {
      if (mpi.rank() == 0) std::cout << help;
      help_only = true;
      return;
    }
    if (mpi.rank() == 0)
      std::cout << "fresco " << kVersion << " " << cmd->name << " on " << mpi.size()
                << " rank(s); effective configuration:\n"
                << effective_configuration(vm) << std::flush;
    work = cmd->setup(vm, ctx);
  });
  return help_only ? 0 : work();
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<MpiSession> mpi;
  try {
    mpi.emplace(&argc, &argv);
    return run(*mpi, argc, argv);
  } catch (const CollectiveFailure& e) {
    return e.exit_code();  // reported once by the rank that owns it
  } catch (const Error& e) {
    const int rank = mpi ? mpi->rank() : 0;
    std::cerr << "fresco: error (rank " << rank << "): " << e.what() << std::endl;
    if (mpi && mpi->size() > 1) mpi->abort(e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    const int rank = mpi ? mpi->rank() : 0;
    std::cerr << "fresco: unexpected error (rank " << rank << "): " << e.what() << std::endl;
    if (mpi && mpi->size() > 1) mpi->abort(1);
    return 1;
  }
}
