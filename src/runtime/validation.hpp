// Checks that run at set-up, before the first denoising step (docs/reliability.md): limits on
// sizes, steps and threads, an estimate of the memory a configuration needs against what the
// node has, the prompt entries' values; and the preemption signals (SIGTERM, SIGUSR1) that
// stop a batch at a step boundary.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "mpi/comm/mpi_context.hpp"
#include "io/prompts_file.hpp"
#include "src/core/tensor.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

// Largest image side in pixels and largest step count Fresco accepts.
inline constexpr int64_t kMaxImageSide = 16384;
inline constexpr int64_t kMaxSteps = 10000;

// InputError starting with `what` (the file's image) and ending with `source` (the option or
// attribute that set the value) unless 16 <= width, height <= kMaxImageSide, multiples of 16.
void check_image_size(int64_t width, int64_t height, const std::string& what, const std::string& source);
// InputError likewise unless 1 <= steps <= kMaxSteps.
void check_steps(int64_t steps, const std::string& what, const std::string& source);
// InputError naming --threads when it is negative or more than 4 threads per core of the node
// (at least 64 are always allowed).
void check_threads(int threads);
// InputError naming `option` when the value is NaN or infinite.
void check_finite(double value, const std::string& option);

// Bytes of memory a rank needs for one image on the CPU backend: the weights (`weight_bytes`)
// plus activations of `tokens` rows of the sequence (of `total_tokens`), the latent buffers and,
// for the patch method, the stale K/V of every layer.
struct MemoryEstimate {
  double weights = 0, activations = 0;
  double total() const { return weights + activations; }
};
MemoryEstimate estimate_memory(const FluxConfig& config, double weight_bytes, DType compute,
                               int64_t image_tokens, int64_t txt_tokens, int group_size,
                               bool patch, DType stale_dtype, bool step_cache = false);
// Host memory one rank may use: FRESCO_MEMORY_PER_RANK (MiB) when set, else the node's physical
// memory (or its cgroup limit, if lower) divided by the ranks on the node. The check against it,
// and against a GPU's memory, is src/runtime/memory_check.hpp.
double memory_per_rank(int ranks_on_node);

// Reads every prompt entry (each rank its share: entry i on rank i % size), refusing a
// non-finite value with an InputError naming the file and the dataset, and returns the digest
// (hex) of every entry's embeddings, the same on every rank. Collective over the world.
std::vector<std::string> check_prompt_values(const MpiSession& mpi, const PromptsFile& prompts);

// Exit status of a batch stopped by SIGTERM or SIGUSR1 with work remaining.
inline constexpr int kExitStopped = 7;
// Installs the handlers of SIGTERM and SIGUSR1: they only set a flag (async-signal-safe).
void install_stop_handlers();
// The signal received (0: none).
int stop_signal();
// A self-imposed time limit (--max-hours, as GROMACS's -maxh): from this call, the run stops at
// the first step boundary where the time left is less than the longest interval between two
// step boundaries so far, with the same status and resume as a stop signal. 0: no limit.
void set_time_limit(double seconds);
// True once the time limit is near (see set_time_limit); measures the interval since its last call.
bool time_limit_near();
// Why the batch stops: "a signal (SIGTERM)", "--max-hours", or "" (not stopping).
std::string stop_reason();
// True on every rank of `group` when any of them received a stop signal or reached the time
// limit (a collective: every rank of the group calls it at the same step boundary).
bool group_agrees_to_stop(Communicator& group);
// True on every rank of `group` when `flag` is true on any of them (a collective under the
// group's deadline: a hung peer ends the job with CommTimeout instead of hanging it).
bool group_any(Communicator& group, bool flag);
// Waits for a non-blocking MPI operation without spinning: MPI_Test, then sleeps (50 us, 1 ms
// past 0.1 s), so that a rank waiting on a slow or stopped peer leaves its core alone. Past
// `deadline` seconds (> 0) it throws CommTimeout with `timeout_message(seconds waited)`.
// `while_waiting`, if given, runs between tests (rank 0 prints the progress reports arriving);
// `progressed`, if given and true, restarts the deadline (the peers showed they are alive).
void wait_sleeping(MPI_Request& request, double deadline,
                   const std::function<std::string(double)>& timeout_message,
                   const std::function<void()>& while_waiting = {},
                   const std::function<bool()>& progressed = {});

}  // namespace fresco
