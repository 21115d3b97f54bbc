// Subcommands and their options: Boost.ProgramOptions, an INI config file (--config) with the
// same option names, command line over file, unknown options rejected, and the effective
// configuration echoed at start.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/runtime/engine.hpp"

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
// The same as a JSON object (name -> value as a string) for run records.
nlohmann::json settings_record(const po::variables_map& vm);

// The parallelism options shared by forward and generate (--parallel, --ulysses, --ring,
// --patches, --ranks-per-node, --warmup-steps, --sync-mode, --stale-dtype) and their values;
// InputError for combinations that make no sense.
void add_parallel_options(po::options_description& options);
// --weights, --model, --threads: what forward and generate need to build the model.
void add_model_options(po::options_description& options);
// --backend, --dtype, --transport, --comm-timeout: the engine a command runs on (forward,
// generate, decode). The composition root: the only place that names a backend or transport.
void add_engine_options(po::options_description& options);
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
ParallelChoice parallel_choice(const po::variables_map& vm);
DType parse_dtype_option(const std::string& option, const std::string& value);

// --cache and its knobs (docs/step-cache.md; generate and bench): the options with the method's
// defaults where not given; InputError for a knob of another method or without a cache. The
// values' ranges against the model are checked by resolve_cache_options (step_cache.hpp).
void add_cache_options(po::options_description& options);
StepCacheOptions cache_options(const po::variables_map& vm);

// --lora FILE[:SCALE] (repeatable) and --lora-unmatched error|warn (generate, forward, bench):
// InputError for a bad scale, a missing file, another --lora-unmatched value.
void add_lora_options(po::options_description& options);
LoraOptions lora_options(const po::variables_map& vm);

// The items of a comma-separated list, trimmed of blanks, empty ones dropped.
std::vector<std::string> split_list(const std::string& text);
// `text` as a number when the whole of it is one (blanks around it allowed), else nullopt.
std::optional<double> whole_number(const std::string& text);

// Checks an option for a positive value, naming it in the error.
void require_positive(const po::variables_map& vm, const std::string& name);


}  // namespace fresco::cli
