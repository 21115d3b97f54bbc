// Subcommands and their options: Boost.ProgramOptions, an INI config file (--config) with the
// same option names, command line over file, unknown options rejected, and the effective
// configuration echoed at start.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/model/vae_decoder.hpp"

namespace fresco::cli {

namespace po = boost::program_options;

// What a command needs at run time besides its options.
struct RunContext {
  const MpiSession& mpi;
  std::string command_line;  // the whole invocation, for provenance
};

struct Command {
  std::string name;
  std::string summary;  // one line for `fresco --help`
  std::string usage;    // "fresco forward --weights W.h5 --inputs IN.h5 --out OUT.h5"
  std::string details;  // paragraph shown by `fresco CMD --help`
  std::function<void(po::options_description&, po::positional_options_description&)> add_options;
  // Set-up runs collectively (same on every rank, errors reported once); it returns the work.
  std::function<std::function<int()>(const po::variables_map&, const RunContext&)> setup;
};

// Parses argv (after the subcommand) for `cmd`, merging --config FILE. Returns false when
// --help was asked for (the help text is then in `help`). Throws InputError on bad options.
bool parse_options(const Command& cmd, const std::vector<std::string>& args,
                   po::variables_map& vm, std::string& help);

// "  name = value" lines of every option (given or default), for the start-up echo.
std::string effective_configuration(const po::variables_map& vm);

// The parallelism options shared by forward and generate (--parallel, --ulysses, --ring,
// --patches, --ranks-per-node, --warmup-steps, --sync-mode, --stale-dtype) and their values;
// InputError for combinations that make no sense.
struct ParallelChoice {
  LayoutRequest layout;
  PlanOptions plan;
};
void add_parallel_options(po::options_description& options);
// --weights, --model, --threads: what forward and generate need to build the model.
void add_model_options(po::options_description& options);
// --backend, --dtype, --transport, --comm-timeout: the engine a command runs on (forward,
// generate, decode). The composition root: the only place that names a backend or transport.
void add_engine_options(po::options_description& options);
struct EngineChoice {
  std::string backend = "cpu";   // cpu | cuda (--backend auto resolved: see default_backend_name)
  bool backend_auto = false;     // --backend auto: cpu where cuda cannot run the group
  bool cuda_graphs = true;       // --cuda-graphs: capture a denoising step once, replay it
  DType compute = DType::f32;    // activations: f32, or bf16 (the GPU's; CPU rounds alike)
  std::string transport = "auto"; // --transport: auto | mpi | ipc | nccl (transports.hpp)
  double comm_timeout = 300;     // seconds a rank waits for a peer before ending the job
};
EngineChoice engine_choice(const po::variables_map& vm);
// --backend checked and resolved: auto (cuda where a GPU is present), cpu or cuda.
std::string backend_option(const po::variables_map& vm);
// --comm-dtype checked: true for e4m3 (FP8 communication), false for auto.
bool fp8_comm_option(const po::variables_map& vm);
// The benchmarks' --backend (auto: cuda where a GPU is present, resolved here) and --dtype
// (auto: bf16 on cuda, f32 on cpu), checked; f16 is refused.
struct BenchEngine {
  std::string backend;
  DType dtype = DType::f32;
};
BenchEngine bench_engine(const po::variables_map& vm);
// The backend of the choice (InputError naming --backend when it cannot be made here).
// `local_rank`: this rank's index on its node, which picks its GPU (one GPU per rank).
std::unique_ptr<Backend> make_engine_backend(const EngineChoice& engine, int local_rank);
// The layout's request completed with the engine's transport and where its buffers live.
void request_transport(LayoutRequest& layout, const EngineChoice& engine, const Backend& backend);
// Weights in the compute dtype's precision: an f32 run keeps what the file stores, a bf16 run
// converts to bf16 (the GPU's weights).
std::optional<DType> weight_dtype_for(const EngineChoice& engine);
ParallelChoice parallel_choice(const po::variables_map& vm);
// Prints (rank 0) the layout and, for the patch method, the memory of its stale buffers for a
// sequence of `tokens` tokens.
void report_plan(const MpiSession& mpi, const ParallelLayout& layout, const ParallelChoice& choice,
                 const FluxConfig& config, int64_t tokens);
DType parse_dtype_option(const std::string& option, const std::string& value);
// The autoencoder decoder of a weights file (InputError when the file holds another model).
std::unique_ptr<VaeDecoder> load_decoder(const std::string& path, Backend& backend,
                                         const EngineChoice& engine);

// Checks an option for a positive value, naming it in the error.
void require_positive(const po::variables_map& vm, const std::string& name);

// Sets OpenMP and OpenBLAS threads: `requested` if positive, else OMP_NUM_THREADS if set
// (what Slurm scripts set from --cpus-per-task), else the node's cores shared among its ranks.
// Returns the count. Results are bitwise reproducible for a given thread count per rank
// (BLAS blocking depends on it), whatever the number of ranks.
int configure_threads(int requested, int ranks_on_node);
// The count configure_threads sets, without setting it (the automatic layout's CPU rate).
int threads_per_rank(int requested, int ranks_on_node);

}  // namespace fresco::cli
