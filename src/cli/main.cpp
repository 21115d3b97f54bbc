// fresco: distributed inference of diffusion transformers. `main` owns the MPI session,
// dispatches the subcommand, and is the one place where errors are reported: set-up errors
// once for the job (collective agreement), run-time errors by the rank that hit them, which
// then aborts the job.
#include <cstdio>
#include <iostream>
#include <optional>

#include "fresco/version.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/config_file.hpp"

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

// Reports a run-time error once, on the rank that hit it, and ends the job: MPI_Abort where
// there are peers (which are then killed wherever they wait). Returns the exit status where
// the job is this one rank.
int end_job(const MpiSession* mpi, const std::exception& e) {
  if (const auto* collective = dynamic_cast<const CollectiveFailure*>(&e))
    return collective->exit_code();  // reported once by the rank that owns it
  const auto* typed = dynamic_cast<const Error*>(&e);
  const int code = typed ? typed->exit_code() : 1;
  std::cerr << "fresco: " << (typed ? "error" : "unexpected error") << " (rank " << (mpi ? mpi->rank() : 0)
            << "): " << e.what() << std::endl;
  if (mpi && mpi->size() > 1) mpi->abort(code);
  return code;
}

int run(const MpiSession& mpi, int argc, char** argv) {
  const auto commands = all_commands();
  set_config_commands(commands);  // a --config file may hold a section per command
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
  if (help_only) return 0;
  // Run-time errors end the job here, while the work's objects still exist: their destructors
  // would otherwise run first, and a transport's teardown may wait on the very peer that hung.
  try {
    return work();
  } catch (const std::exception& e) {
    return end_job(&mpi, e);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<MpiSession> mpi;
  try {
    mpi.emplace(&argc, &argv);
    return run(*mpi, argc, argv);
  } catch (const std::exception& e) {
    return end_job(mpi ? &*mpi : nullptr, e);
  }
}
