// Starting the processes of a sweep: the runs (mpiexec -n K, or srun job steps inside an
// allocation), make-prompts and gnuplot, each with its output in a log file and its peak
// resident memory.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/cli/sweep/sweep.hpp"
#include "src/core/error.hpp"

extern char** environ;

namespace fresco::cli::sweep {

namespace {

namespace fs = std::filesystem;

// The environment before MPI_Init: the runs the sweep launches must not inherit the variables
// OpenMPI sets for this (singleton) process, or they would join its session.
std::vector<std::string> capture_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}
const std::vector<std::string> g_initial_environment = capture_environment();

}  // namespace

Launch launch(const std::vector<std::string>& argv, const std::string& log, const std::string& cwd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const auto& e : g_initial_environment) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  // The log is opened by the child after it changed directory: name it from here.
  const std::string log_path = fs::absolute(log).string();

  // An intermediate process waits for the launcher so that RUSAGE_CHILDREN covers this run only
  // (the ranks are mpiexec's children, their peak RSS reaches the intermediate through it).
  int fds[2];
  if (pipe(fds) != 0) throw IoError("fresco sweep: pipe() failed");
  const auto start = std::chrono::steady_clock::now();
  const pid_t helper = fork();
  if (helper < 0) throw IoError("fresco sweep: fork() failed");
  if (helper == 0) {
    close(fds[0]);
    double result[2] = {127, -1};
    if (cwd.empty() || chdir(cwd.c_str()) == 0) {
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, 1, 2);
      posix_spawn_file_actions_addclose(&actions, fds[1]);
      pid_t child = 0;
      if (posix_spawnp(&child, args[0], &actions, nullptr, args.data(), env.data()) == 0) {
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        result[0] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        rusage usage{};
        getrusage(RUSAGE_CHILDREN, &usage);
        result[1] = double(usage.ru_maxrss) / 1024.0;  // KiB -> MiB
      }
    }
    if (write(fds[1], result, sizeof result) != sizeof result) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  double result[2] = {127, -1};
  const ssize_t got = read(fds[0], result, sizeof result);
  close(fds[0]);
  int status = 0;
  waitpid(helper, &status, 0);
  Launch l;
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  l.status = got == sizeof result ? int(result[0]) : 127;
  l.peak_rss_mib = result[1];
  return l;
}

std::vector<std::string> launcher_prefix(const SweepPlan& plan, int K) {
  if (plan.launcher == "srun") {
    // A step of K tasks on as few nodes as hold them (--ranks-per-node per node), filled in order.
    std::vector<std::string> a = {"srun", "--mpi=pmix", "-n", std::to_string(K), "--exclusive",
                                  "--cpus-per-task", std::to_string(plan.threads), "--kill-on-bad-exit=1"};
    if (plan.ranks_per_node > 0) {
      const int nodes = (K + plan.ranks_per_node - 1) / plan.ranks_per_node;
      for (const std::string& x : {std::string("-N"), std::to_string(nodes), std::string("-m"), std::string("block")})
        a.push_back(x);
    }
    return a;
  }
  const char* mpiexec = std::getenv("MPIEXEC");
  return {mpiexec && *mpiexec ? mpiexec : "mpiexec", "-n", std::to_string(K), "--oversubscribe"};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_lines(const std::string& text, int n) {
  size_t pos = text.size();
  for (int i = 0; i <= n && pos != std::string::npos && pos > 0; ++i) pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

bool on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::istringstream in(path ? path : "");
  std::string dir;
  while (std::getline(in, dir, ':'))
    if (!dir.empty() && access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

std::string self_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "fresco" : p.string();
}

}  // namespace fresco::cli::sweep
