#include "src/runtime/validation.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

#include "mpi/comm/mpi_communicator.hpp"
#include "src/core/digest.hpp"
#include "src/core/error.hpp"
#include "src/core/tuning.hpp"

namespace fresco {

void check_image_size(int64_t width, int64_t height, const std::string& what, const std::string& source) {
  require_input(width > 0 && height > 0 && width % 16 == 0 && height % 16 == 0,
                what + "width and height must be positive multiples of 16 (got " + std::to_string(width) + "x" +
                    std::to_string(height) + ")" + source);
  require_input(width <= kMaxImageSide && height <= kMaxImageSide,
                what + "width and height must be at most " + std::to_string(kMaxImageSide) + " pixels (got " +
                    std::to_string(width) + "x" + std::to_string(height) + ")" + source);
}

void check_steps(int64_t steps, const std::string& what, const std::string& source) {
  require_input(steps > 0, what + "the number of steps must be positive (got " + std::to_string(steps) + ")" + source);
  require_input(steps <= kMaxSteps, what + "the number of steps must be at most " + std::to_string(kMaxSteps) +
                                        " (got " + std::to_string(steps) + ")" + source);
}

void check_threads(int threads) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int most = std::max(64, 4 * cores);
  require_input(threads >= 0, "option --threads must not be negative (got " + std::to_string(threads) +
                                  "; 0 means automatic)");
  require_input(threads <= most, "option --threads " + std::to_string(threads) + " is more than " +
                                     std::to_string(most) + " (4 per core of this node's " +
                                     std::to_string(cores) + ", at least 64)");
}

void check_finite(double value, const std::string& option) {
  require_input(std::isfinite(value), "option " + option + " must be a finite number (got " +
                                          std::to_string(value) + ")");
}

MemoryEstimate estimate_memory(const FluxConfig& config, double weight_bytes, DType compute,
                               int64_t image_tokens, int64_t txt_tokens, int group_size, bool patch,
                               DType stale_dtype, bool step_cache) {
  MemoryEstimate m;
  m.weights = weight_bytes;
  const double e = double(dtype_size(compute));
  const double d = config.hidden, mlp = config.mlp_hidden();
  const double total = double(image_tokens + txt_tokens);
  const double rows = std::ceil(total / std::max(1, group_size));
  // Residual, normed, fused (3d + m), q, k, concat (d + m), RoPE tables (f32).
  double a = rows * (d * 7 + mlp * 2) * e + rows * config.head_dim() * 4.0;
  // Attention: K/V of the whole sequence (gathered or passed around) and 256 query rows of
  // scores per head, per thread.
  a += 2 * total * d * e + 256.0 * total * 4.0 * config.heads;
  // The latent, its packed tokens, the noise on the host and the gathered result (f32).
  a += 4.0 * double(image_tokens) * config.in_channels * 4.0;
  if (patch) a += double(config.depth + config.depth_single) * 2 * total * d * double(dtype_size(stale_dtype));
  // A step cache (docs/step-cache.md): the cached residual of the rank's rows, the signal and its
  // reference of its image rows (bounded by the rows).
  if (step_cache) a += 3 * rows * d * e;
  m.activations = a;
  return m;
}

double memory_per_rank(int ranks_on_node) {
  if (tuning::is_set(tuning::Switch::memory_per_rank))  // the registry refuses a value that is no positive number
    return tuning::number(tuning::Switch::memory_per_rank) * 1024.0 * 1024.0;
  double node = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // cgroup v2 limit of the job, if any
  std::string limit;
  if (cgroup >> limit && limit != "max") {
    const double bytes = std::atof(limit.c_str());
    if (bytes > 0) node = std::min(node, bytes);
  }
  return node / std::max(1, ranks_on_node);
}

std::vector<std::string> check_prompt_values(const MpiSession& mpi, const PromptsFile& prompts) {
  const int64_t n = prompts.size();
  std::vector<uint64_t> mine(size_t(n), 0), all(size_t(n), 0);
  std::string problem;  // the first bad entry of this rank's share
  for (int64_t i = mpi.rank(); i < n; i += mpi.size()) {
    const std::string group = prompts.path() + ":/prompts/" + std::to_string(i);
    PromptEntry e;
    try {  // nothing may throw before the collective below
      e = prompts.read(i);
    } catch (const std::exception& err) {
      if (problem.empty()) problem = group + " cannot be read: " + err.what();
      continue;
    }
    for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"txt", &e.txt}, {"y", &e.y}})
      if (const int64_t bad = count_nonfinite_host(*t); bad && problem.empty())
        problem = group + "/" + name + " has " + std::to_string(bad) + " non-finite value(s) (NaN or Inf)";
    mine[size_t(i)] = Digest().tensor(e.txt).tensor(e.y).value();
  }
  // Each entry is digested by one rank; the sum gives every rank every digest. The collective
  // comes before the throw, so a rank with a bad entry does not leave the others waiting.
  FRESCO_MPI_CHECK(MPI_Allreduce(mine.data(), all.data(), int(n), MPI_UINT64_T, MPI_SUM, mpi.world()));
  if (!problem.empty()) throw InputError(problem);
  std::vector<std::string> hex;
  for (uint64_t v : all) hex.push_back(Digest().u64(v).hex());
  return hex;
}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // MPI and file calls carry on; the flag is read at a step boundary
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_signal() { return int(g_stop_signal); }

namespace {
using steady = std::chrono::steady_clock;
std::optional<steady::time_point> g_deadline;  // --max-hours
std::optional<steady::time_point> g_last_boundary;
double g_longest_interval = 0;  // seconds between two step boundaries, the longest so far
bool g_time_up = false;
}  // namespace

void set_time_limit(double seconds) {
  g_deadline.reset();
  if (seconds > 0) g_deadline = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(seconds));
}

bool time_limit_near() {
  const auto now = steady::now();
  if (g_last_boundary)
    g_longest_interval = std::max(g_longest_interval, std::chrono::duration<double>(now - *g_last_boundary).count());
  g_last_boundary = now;
  if (g_deadline && std::chrono::duration<double>(*g_deadline - now).count() <= g_longest_interval) g_time_up = true;
  return g_time_up;
}

std::string stop_reason() {
  if (const int sig = stop_signal())
    return sig == SIGTERM ? "a signal (SIGTERM)" : sig == SIGUSR1 ? "a signal (SIGUSR1)" : "a signal";
  return g_time_up ? "--max-hours" : "";
}

bool group_agrees_to_stop(Communicator& group) {
  const bool near = time_limit_near();
  return group_any(group, stop_signal() != 0 || near);
}

bool group_any(Communicator& group, bool flag) {
  const int32_t here = flag ? 1 : 0;
  if (group.size() == 1) return here != 0;
  const auto* mpi_group = dynamic_cast<const MpiCommunicator*>(&group);
  if (!mpi_group) {  // other transports: their host collective
    std::vector<int32_t> all(size_t(group.size()));
    group.host_all_gather(&here, all.data(),
                          Displacements::packed(std::vector<size_t>(all.size(), sizeof(int32_t))));
    return std::any_of(all.begin(), all.end(), [](int32_t s) { return s != 0; });
  }
  // A non-blocking all-reduce waited on under the group's deadline, so a hung peer still ends
  // the job (CommTimeout, status 6) instead of hanging it here.
  int32_t any = 0;
  MPI_Request request;
  FRESCO_MPI_CHECK(MPI_Iallreduce(&here, &any, 1, MPI_INT32_T, MPI_MAX, mpi_group->comm(), &request));
  wait_sleeping(request, group.deadline(), [&](double waited) {
    return "rank " + std::to_string(group.rank()) + " of " + group.describe() + " waited " +
           std::to_string(int(waited)) + " s at a step boundary: a peer is hung or dead (deadline " +
           std::to_string(group.deadline()) + " s, --comm-timeout)";
  });
  return any != 0;
}

void wait_sleeping(MPI_Request& request, double deadline,
                   const std::function<std::string(double)>& timeout_message,
                   const std::function<void()>& while_waiting, const std::function<bool()>& progressed) {
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    FRESCO_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (progressed && progressed()) start = std::chrono::steady_clock::now();  // the peers are alive
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (deadline > 0 && waited > deadline) throw CommTimeout(timeout_message(waited));
    if (while_waiting) while_waiting();
    if (waited > 1e-3) std::this_thread::sleep_for(std::chrono::microseconds(waited > 0.1 ? 1000 : 50));
  }
}

}  // namespace fresco
