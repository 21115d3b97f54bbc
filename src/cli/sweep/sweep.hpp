// `fresco sweep`'s parts, one job per file (the command itself, its options and the loop over
// the runs: src/cli/cmd_sweep.cpp):
//   plan.cpp     the options checked into a SweepPlan (every error before anything runs);
//   launch.cpp   starting processes (mpiexec or srun job steps, gnuplot) and their peak memory;
//   records.cpp  a run's figures from its run record (generate --record), the sweep's records;
//   model.cpp    the performance model beside the measurements and beyond them;
//   plots.cpp    the gnuplot scripts and PNGs.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "src/cli/options.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/perf_model.hpp"

namespace fresco::cli::sweep {

using json = nlohmann::json;

// ---- plan.cpp -------------------------------------------------------------------------------

struct Resolution {
  int64_t width = 0, height = 0;
  std::string name() const { return std::to_string(width) + "x" + std::to_string(height); }
  int64_t img_tokens() const { return (width / 16) * (height / 16); }
};

struct SweepPlan {
  std::string weights, out_dir, launcher, fresco;
  std::string command_line;  // the sweep's own, for its records
  json settings;             // every effective option of the sweep, for its records
  FluxConfig config;
  std::vector<std::string> methods;
  std::vector<int> ranks;
  std::vector<Resolution> resolutions;
  int64_t steps = 3, txt_len = 8;
  int threads = 1, ranks_per_node = 0, repeats = 1;
  std::vector<int> predict_ranks;  // --predict-ranks: model-only points beyond the measured ones
  // The engine every run uses, passed to generate: --backend, --dtype, --transport, --comm-dtype.
  std::vector<std::pair<std::string, std::string>> engine;
  // The same resolved as generate resolves it (backend auto: cuda where a GPU is present;
  // dtype auto: bf16 on cuda, f32 on cpu): the model's defaults where a record does not say.
  EngineChoice engine_choice;
  // The model's numbers given on the command line; 0: generate's per-backend default
  // (engine_machine), and for the rate the one-rank run's measurement where there is one.
  double flops_per_second = 0, intra_node_gbs = 0, inter_node_gbs = 0, latency_us = 0;
  bool plots = true;
  std::string gnuplot = "gnuplot";
};

// The sweep's options (besides add_model_options').
void add_sweep_options(po::options_description& options);
// Every option checked (InputError naming it) and every configuration checked against the
// images and the allocation, before anything runs.
SweepPlan make_plan(const po::variables_map& vm, const RunContext& ctx);

// ---- launch.cpp -----------------------------------------------------------------------------

// Exit status and largest resident set of a launched command.
struct Launch {
  int status = -1;
  double seconds = 0;
  double peak_rss_mib = -1;  // -1: unknown (srun: the ranks are not our descendants)
};
// Runs argv to completion, its output (stdout and stderr) in the file `log`, in the directory
// `cwd` (empty: this process's).
Launch launch(const std::vector<std::string>& argv, const std::string& log, const std::string& cwd = "");
// The launcher of a run on K ranks: mpiexec (MPIEXEC overrides it), or an srun job step.
std::vector<std::string> launcher_prefix(const SweepPlan& plan, int K);
std::string read_text(const std::string& path);
std::string last_lines(const std::string& text, int n);
// True when `program` is an executable path, or found on PATH.
bool on_path(const std::string& program);
// This binary, which the runs use.
std::string self_executable();

// ---- records.cpp ----------------------------------------------------------------------------

// What one generate run measured, read from its run record.
struct RunFigures {
  double ms_per_step = 0;      // median of the steady-state steps (after the first of each kind)
  int steady_steps = 0;        // how many steps that median is of
  int ulysses = 1, ring = 1, patches = 1;
  double bytes_sent_per_step = 0;  // largest over the group's ranks (all steps)
  double wait_ms_per_step = 0;     // exposed communication, mean over the group's ranks (all steps)
  double comm_share = 0;           // wait / (wait + compute), mean over the ranks (all steps)
  json engine;  // the record's engine: backend, device, dtype, transport, degrees
  json model;   // the record's model: name, family, attention shape
};
// The figures of the run record at `path`, written by a generate run of one image. IoError
// naming the file when it is missing, not JSON, not a run record, or lacks a field; InputError
// when the image has no step after the first of its kind (too few --steps to measure).
RunFigures read_run_record(const std::string& path);
// The fields every sweep record carries: what ran (version, commit, the sweep's command line
// and settings, the model's parameters), where, and with what engine options.
json record_header(const SweepPlan& plan);
// The records of DIR/sweep.jsonl (IoError naming the file and line when one is not JSON).
std::vector<json> read_sweep_records(const std::string& path);

// ---- model.cpp ------------------------------------------------------------------------------

// The model's step of a measured record: generate's per-backend defaults (engine_machine, for
// the backend, device and dtype of the record's run_engine, else of the sweep's options), the
// options the user gave, and the compute rate `measured_rate` (flops per second of one rank;
// 0: not measured).
struct ModelPoint {
  double ms = 0, exposed_ms = 0, bytes = 0;
  std::string machine;  // MachineModel::describe(): whose numbers priced it
};
ModelPoint model_point(const SweepPlan& plan, const json& record, double measured_rate);
// The model's step time (ms) of a method on K ranks that were not measured (--predict-ranks)
// for an image of `img_tokens` tokens, priced like `reference` (a record of the same
// resolution, or an empty object), and the layout's name.
std::pair<double, std::string> predicted_ms(const SweepPlan& plan, const json& reference, const std::string& method,
                                            int K, int64_t img_tokens, double measured_rate);

// ---- plots.cpp ------------------------------------------------------------------------------

// DIR/{time,speedup,efficiency,comm_share,model}.{gp,png}; the scripts name only files of
// their own folder, so `gnuplot NAME.gp` redraws from there.
void draw_plots(const SweepPlan& plan, const std::vector<json>& records);

}  // namespace fresco::cli::sweep
