// The sweep's options, checked into a SweepPlan: each error names its option, and every
// configuration is checked against the images and the allocation before anything runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "mpi/comm/transports.hpp"
#include "src/cli/sweep/sweep.hpp"
#include "src/core/error.hpp"
#include "src/model/weights_io.hpp"

namespace fresco::cli::sweep {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kMethods = {"sequence", "ulysses", "ring", "patch"};

// The comma list of option `name` as positive rank counts (InputError naming the option).
std::vector<int> rank_counts(const po::variables_map& vm, const std::string& name) {
  std::vector<int> counts;
  for (const std::string& k : split_list(vm[name].as<std::string>())) {
    const std::optional<double> value = whole_number(k);
    require_input(value && *value > 0 && *value <= 1 << 20 && *value == std::floor(*value),
                  "option --" + name + ": '" + k + "' is not a positive rank count");
    counts.push_back(int(*value));
  }
  return counts;
}

// A model number: 0 (the backend's default) or positive.
double model_option(const po::variables_map& vm, const std::string& name) {
  const double value = vm[name].as<double>();
  require_input(value >= 0, "option --" + name + " must be positive, or 0 for the backend's default (got " +
                                std::to_string(value) + ")");
  return value;
}

}  // namespace

void add_sweep_options(po::options_description& o) {
  o.add_options()
      ("out", po::value<std::string>()->required(), "result directory (sweep.jsonl, PNG plots, runs/)")
      ("methods", po::value<std::string>()->default_value("ulysses,ring"),
       "comma list of: sequence, ulysses, ring, patch")
      ("ranks", po::value<std::string>()->default_value("1,2,4"), "comma list of rank counts")
      ("resolutions", po::value<std::string>()->default_value("256x256"), "comma list of WIDTHxHEIGHT")
      ("steps", po::value<int64_t>()->default_value(3),
       "denoising steps of each run (at least 2: the first step of each kind is warm-up, not timed)")
      ("txt-len", po::value<int64_t>()->default_value(64), "text tokens of the prompt")
      ("repeats", po::value<int>()->default_value(1), "runs of each configuration")
      ("launcher", po::value<std::string>()->default_value("auto"),
       "mpiexec, srun, or auto (srun inside a Slurm allocation, else mpiexec)")
      ("ranks-per-node", po::value<int>()->default_value(0),
       "ranks per node: emulated nodes passed to generate (mpiexec), and the model's node size;\n"
       "0: undeclared, every run on one node (--predict-ranks needs it declared)")
      ("flops-per-second", po::value<double>()->default_value(0),
       "model: compute rate of one rank (0: measured by the one-rank run at each resolution,\n"
       "else generate's default for the backend, GPU kind and dtype)")
      ("intra-node-gbs", po::value<double>()->default_value(0),
       "model: bandwidth between ranks of a node, GB/s per rank (0: generate's default for the backend)")
      ("inter-node-gbs", po::value<double>()->default_value(0),
       "model: bandwidth between nodes, GB/s per rank (0: generate's default for the backend)")
      ("latency-us", po::value<double>()->default_value(0),
       "model: latency of one message, microseconds (0: generate's default for the backend)")
      ("no-plots", po::bool_switch(), "write the records only (no gnuplot)")
      ("plot-only", po::bool_switch(), "redraw the plots from DIR/sweep.jsonl without running")
      ("backend", po::value<std::string>()->default_value("auto"), "passed to every run: auto, cpu or cuda")
      ("dtype", po::value<std::string>()->default_value("auto"),
       (std::string("passed to every run: ") + kComputeDtypeChoices).c_str())
      ("transport", po::value<std::string>()->default_value("auto"),
       "passed to every run: auto, mpi, ipc, nccl or ucx (see fresco generate --help)")
      ("comm-dtype", po::value<std::string>()->default_value("auto"),
       "passed to every run: auto or e4m3 (FP8 communication)")
      ("predict-ranks", po::value<std::string>()->default_value(""),
       "comma list of rank counts to extend each model line to (model.png), at the compute rate\n"
       "the one-rank runs measured: plan a larger run from a small sweep (with --plot-only too);\n"
       "needs --ranks-per-node (where the nodes end decides the links)");
}

SweepPlan make_plan(const po::variables_map& vm, const RunContext& ctx) {
  require_input(ctx.mpi.size() == 1, "fresco sweep runs as one process (it launches the runs itself); got " +
                                         std::to_string(ctx.mpi.size()) + " ranks");
  SweepPlan plan;
  plan.command_line = ctx.command_line;
  plan.settings = settings_record(vm);
  plan.weights = vm["weights"].as<std::string>();
  plan.out_dir = vm["out"].as<std::string>();
  plan.fresco = self_executable();
  plan.steps = vm["steps"].as<int64_t>();
  plan.txt_len = vm["txt-len"].as<int64_t>();
  plan.repeats = vm["repeats"].as<int>();
  plan.threads = std::max(1, vm["threads"].as<int>());
  // Checked here, once, with generate's own rules (an error names the option).
  for (const char* name : {"backend", "dtype", "transport", "comm-dtype"})
    plan.engine.emplace_back(name, vm[name].as<std::string>());
  plan.engine_choice.backend = backend_option(vm);
  plan.engine_choice.compute = resolve_compute_dtype(vm["dtype"].as<std::string>(), plan.engine_choice.backend);
  check_transport_name(vm["transport"].as<std::string>());
  (void)fp8_comm_option(vm);
  plan.ranks_per_node = vm["ranks-per-node"].as<int>();
  plan.flops_per_second = model_option(vm, "flops-per-second");
  plan.intra_node_gbs = model_option(vm, "intra-node-gbs");
  plan.inter_node_gbs = model_option(vm, "inter-node-gbs");
  plan.latency_us = model_option(vm, "latency-us");
  plan.plots = !vm["no-plots"].as<bool>();
  plan.predict_ranks = rank_counts(vm, "predict-ranks");
  // Only the first step of each kind is warm-up (planning, sizing, capture): a second step is
  // the least that leaves one to time.
  require_input(plan.steps >= 2, "option --steps must be at least 2: the first step is warm-up, not timed (got " +
                                     std::to_string(plan.steps) + ")");
  require_input(plan.txt_len > 0, "option --txt-len must be positive");
  require_input(plan.repeats > 0, "option --repeats must be positive");
  require_input(plan.ranks_per_node >= 0, "option --ranks-per-node must not be negative");
  // The model's larger runs cross nodes; where the nodes end decides which links their
  // collectives cross, and a sweep on one host cannot tell.
  require_input(plan.predict_ranks.empty() || plan.ranks_per_node > 0,
                "option --predict-ranks extrapolates beyond the measured runs, where the links between nodes "
                "decide: declare the node size with --ranks-per-node N (ranks per node of the planned run)");

  for (const std::string& m : split_list(vm["methods"].as<std::string>())) {
    require_input(std::find(kMethods.begin(), kMethods.end(), m) != kMethods.end(),
                  "option --methods: unknown method '" + m + "' (known: sequence, ulysses, ring, patch)");
    if (std::find(plan.methods.begin(), plan.methods.end(), m) == plan.methods.end()) plan.methods.push_back(m);
  }
  require_input(!plan.methods.empty(), "option --methods: no method given");
  plan.ranks = rank_counts(vm, "ranks");
  require_input(!plan.ranks.empty(), "option --ranks: no rank count given");
  std::sort(plan.ranks.begin(), plan.ranks.end());
  plan.ranks.erase(std::unique(plan.ranks.begin(), plan.ranks.end()), plan.ranks.end());
  for (const std::string& r : split_list(vm["resolutions"].as<std::string>())) {
    Resolution res;
    char x = 0, end = 0;
    long long w = 0, h = 0;
    require_input(std::sscanf(r.c_str(), "%lld%c%lld%c", &w, &x, &h, &end) == 3 && x == 'x' && w > 0 && h > 0 &&
                      w % 16 == 0 && h % 16 == 0,
                  "option --resolutions: '" + r + "' is not WIDTHxHEIGHT with positive multiples of 16");
    res.width = w;
    res.height = h;
    plan.resolutions.push_back(res);
  }
  require_input(!plan.resolutions.empty(), "option --resolutions: no resolution given");

  std::string launcher = vm["launcher"].as<std::string>();
  require_input(launcher == "auto" || launcher == "mpiexec" || launcher == "srun",
                "option --launcher must be auto, mpiexec or srun (got '" + launcher + "')");
  const char* job = std::getenv("SLURM_JOB_ID");
  if (launcher == "auto") launcher = job ? "srun" : "mpiexec";
  plan.launcher = launcher;
  if (launcher == "srun") {
    require_input(job != nullptr, "option --launcher srun needs a Slurm allocation (sbatch or salloc); "
                                  "outside Slurm use --launcher mpiexec");
    const char* ntasks = std::getenv("SLURM_NTASKS");
    const int tasks = ntasks ? std::atoi(ntasks) : 1;
    require_input(plan.ranks.back() <= tasks, "option --ranks: " + std::to_string(plan.ranks.back()) +
                                                  " ranks do not fit the allocation's " + std::to_string(tasks) +
                                                  " task(s) (sbatch -n)");
  }
  require_input(random_weights_seed(plan.weights) || fs::exists(plan.weights),
                "weights file " + plan.weights + " does not exist");
  plan.config = preset_for_weights(plan.weights, vm["model"].as<std::string>());
  // Every configuration must fit the image: a sequence shard needs a token per rank, a patch a
  // row of the latent grid per rank (the same checks generate makes).
  for (const Resolution& res : plan.resolutions)
    for (int K : plan.ranks)
      for (const std::string& m : plan.methods) {
        const int64_t gh = res.height / 16;
        const std::string what =
            "option --ranks: " + std::to_string(K) + " ranks do not fit " + res.name() + " with method " + m + ": ";
        if (m == "patch")
          require_input(gh >= K, what + "patch parallelism needs a latent grid row per rank (" + std::to_string(gh) +
                                     " rows)");
        else
          require_input(plan.txt_len + res.img_tokens() >= K,
                        what + "a sequence shard needs a token per rank (" +
                            std::to_string(plan.txt_len + res.img_tokens()) + " tokens)");
      }
  if (plan.plots) {
    const char* g = std::getenv("FRESCO_GNUPLOT");
    if (g && *g) plan.gnuplot = g;
    require_input(on_path(plan.gnuplot), "gnuplot not found (" + plan.gnuplot +
                                             "): install it (apt-get install gnuplot-nox, or "
                                             "scripts/install-deps.sh) or pass --no-plots");
    // gnuplot runs in the output folder: a relative path to it must still reach it from there.
    if (plan.gnuplot.find('/') != std::string::npos) plan.gnuplot = fs::absolute(plan.gnuplot).string();
  }
  return plan;
}

}  // namespace fresco::cli::sweep
