// `fresco sweep`: a scaling study. For every resolution, rank count and method it launches one
// `fresco generate` run (mpiexec -n K outside Slurm, `srun -n K --exclusive` job steps inside an
// allocation) that writes a run record (--record), reads the run's steady-state ms per step and
// per-rank communication from that record, appends one JSON record per run to DIR/sweep.jsonl,
// and draws PNG plots with gnuplot: time and speed-up against ranks per method, parallel
// efficiency, communication share, and the performance model (src/model/perf_model.hpp)
// beside the measurements. The parts live in src/cli/sweep/ (sweep.hpp lists them); this file
// holds the command and the loop over the runs.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "src/cli/commands.hpp"
#include "src/cli/sweep/sweep.hpp"
#include "src/core/error.hpp"
#include "src/model/weights_io.hpp"

namespace fresco::cli {
namespace {

namespace fs = std::filesystem;
using namespace sweep;

// The generate options of a method on K ranks.
std::vector<std::string> method_options(const std::string& method, int K, int ranks_per_node) {
  std::vector<std::string> o;
  if (K > 1) {
    if (method == "ulysses") o = {"--ulysses", std::to_string(K)};
    else if (method == "ring") o = {"--ring", std::to_string(K)};
    else if (method == "patch") o = {"--parallel", "patch", "--patches", std::to_string(K)};
    // sequence: the automatic U x R of one image on K ranks
  }
  if (ranks_per_node > 0) {  // mpiexec on one host: emulated nodes (srun: the real ones)
    o.push_back("--ranks-per-node");
    o.push_back(std::to_string(ranks_per_node));
  }
  return o;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The record's figures from the run's record and the model's prediction at `rate` (the
// compute rate the resolution's one-rank run measured; 0: none yet).
void add_figures(const SweepPlan& plan, const RunFigures& m, double rate, const Launch& l, json& r) {
  const double flops = flux_step_flops(plan.config, plan.txt_len, r["img_tokens"].get<int64_t>()).total();
  r["status"] = "ok";
  r["ulysses"] = m.ulysses;
  r["ring"] = m.ring;
  r["patches"] = m.patches;
  r["run_engine"] = m.engine;  // as generate resolved it: backend, device, dtype, transport
  r["ms_per_step"] = m.ms_per_step;
  r["steady_steps"] = m.steady_steps;
  r["flops_per_step"] = flops;
  r["tflops"] = flops / (1e-3 * m.ms_per_step) / 1e12;
  r["bytes_sent_per_step"] = m.bytes_sent_per_step;   // largest over the ranks
  r["comm_wait_ms_per_step"] = m.wait_ms_per_step;    // exposed communication, mean over the ranks
  r["comm_share"] = m.comm_share;
  // The largest rank's peak resident memory; unknown under srun (the ranks are slurmstepd's
  // children, not ours).
  r["peak_rss_mib"] = plan.launcher == "srun" || l.peak_rss_mib < 0 ? json(nullptr) : json(l.peak_rss_mib);
  r["wall_seconds"] = l.seconds;
  const ModelPoint model = model_point(plan, r, rate);
  r["model_ms_per_step"] = model.ms;
  r["model_exposed_comm_ms"] = model.exposed_ms;
  r["model_bytes_per_step"] = model.bytes;
  r["model_machine"] = model.machine;
}

int run_sweep(const SweepPlan& plan) {
  fs::create_directories(plan.out_dir + "/runs");
  const std::string records_path = plan.out_dir + "/sweep.jsonl";
  std::printf("fresco sweep: %zu method(s) x %zu rank count(s) x %zu resolution(s), %lld steps, %s, "
              "records appended to %s\n",
              plan.methods.size(), plan.ranks.size(), plan.resolutions.size(), (long long)plan.steps,
              plan.launcher.c_str(), records_path.c_str());
  std::fflush(stdout);
  const json header = record_header(plan);
  std::vector<json> records;
  int failures = 0;
  for (const Resolution& res : plan.resolutions) {
    const std::string prompts = plan.out_dir + "/runs/prompts_" + res.name() + ".h5";
    const Launch p = launch({plan.fresco, "make-prompts", "--model", plan.config.name, "--count", "1",
                             "--txt-len", std::to_string(plan.txt_len), "--width", std::to_string(res.width),
                             "--height", std::to_string(res.height), "--steps", std::to_string(plan.steps),
                             prompts},
                            prompts + ".log");
    if (p.status != 0)
      throw IoError("fresco sweep: make-prompts failed: " + last_lines(read_text(prompts + ".log"), 3));
    double rate = plan.flops_per_second;  // measured by the one-rank run (ranks are sorted)
    for (int K : plan.ranks) {
      for (const std::string& method : plan.methods) {
        if (K == 1 && method != plan.methods.front()) continue;  // one baseline run per resolution
        for (int rep = 0; rep < plan.repeats; ++rep) {
          const std::string id = res.name() + "_" + (K == 1 ? "single" : method) + "_np" + std::to_string(K) +
                                 (plan.repeats > 1 ? "_r" + std::to_string(rep) : "");
          const std::string out = plan.out_dir + "/runs/" + id, log = out + ".log", run_record = out + ".json";
          fs::remove_all(out);
          fs::remove(run_record);  // a record left by an earlier sweep must not stand for this run
          std::vector<std::string> argv = launcher_prefix(plan, K);
          for (const std::string& a :
               {plan.fresco, std::string("generate"), std::string("--weights"), plan.weights,
                std::string("--prompts"), prompts, std::string("--out"), out, std::string("--threads"),
                std::to_string(plan.threads), std::string("--record"), run_record})
            argv.push_back(a);
          for (const std::string& a : method_options(method, K, plan.launcher == "srun" ? 0 : plan.ranks_per_node))
            argv.push_back(a);
          if (random_weights_seed(plan.weights)) {  // random weights: generate needs the preset's name
            argv.push_back("--model");
            argv.push_back(plan.config.name);
          }
          for (const auto& [name, value] : plan.engine) {
            argv.push_back("--" + name);
            argv.push_back(value);
          }
          std::printf("fresco sweep: %s ...", id.c_str());
          std::fflush(stdout);
          const Launch l = launch(argv, log);
          fs::remove_all(out);  // the latents are not the point
          json r = header;
          r["time"] = now_utc();
          r["method"] = K == 1 ? std::string("single") : method;
          r["ranks"] = K;
          r["resolution"] = res.name();
          r["width"] = res.width;
          r["height"] = res.height;
          r["txt_tokens"] = plan.txt_len;
          r["img_tokens"] = res.img_tokens();
          r["steps"] = plan.steps;
          r["run_command_line"] = join(argv);
          r["log"] = log;
          r["run_record"] = run_record;
          std::string failure;
          if (l.status != 0) {
            failure = "exit " + std::to_string(l.status) + ", see " + log + "\n" + last_lines(read_text(log), 4);
          } else {
            try {
              const RunFigures m = read_run_record(run_record);
              if (K == 1 && rate <= 0)  // the measured compute rate of one rank
                rate = flux_step_flops(plan.config, plan.txt_len, res.img_tokens()).total() / (1e-3 * m.ms_per_step);
              add_figures(plan, m, rate, l, r);
            } catch (const Error& e) {  // reported here, in the run's line and record
              failure = e.what();
            }
          }
          if (!failure.empty()) {
            r["status"] = "failed";
            r["exit_status"] = l.status;
            r["error"] = failure;
            ++failures;
            std::printf(" FAILED: %s\n", failure.c_str());
          } else {
            std::printf(" %.4g ms/step (median of %d after warm-up), %.4f TFLOP/s, comm wait %.1f%%, model %.4g ms\n",
                        r["ms_per_step"].get<double>(), r["steady_steps"].get<int>(), r["tflops"].get<double>(),
                        100.0 * r["comm_share"].get<double>(), r["model_ms_per_step"].get<double>());
          }
          std::fflush(stdout);
          std::ofstream(records_path, std::ios::app) << r.dump() << "\n";
          records.push_back(r);
        }
      }
    }
  }
  if (plan.plots) draw_plots(plan, records);
  std::printf("fresco sweep: %zu run(s), %d failed; records in %s\n", records.size(), failures,
              records_path.c_str());
  return failures ? 1 : 0;
}

}  // namespace

Command sweep_command() {
  Command c;
  c.name = "sweep";
  c.summary = "scaling study: run generate over methods x ranks x resolutions, JSON + PNG plots";
  c.usage = "fresco sweep --weights W.h5 --out DIR [--methods ulysses,ring] [--ranks 1,2,4] [--resolutions 256x256]";
  c.details =
      "Runs one `fresco generate` of one image per (resolution, rank count, method): `mpiexec -n K`\n"
      "outside Slurm, `srun -n K --exclusive` job steps inside an allocation (--launcher). One\n"
      "rank-1 run per resolution is the baseline of every method. Each run writes a run record\n"
      "(DIR/runs/RUN.json, generate --record) from which the sweep appends a JSON record to\n"
      "DIR/sweep.jsonl (version, commit, command line, model parameters, configuration, hardware,\n"
      "ms/step after warm-up, TFLOP/s, bytes sent, exposed communication, peak memory, the\n"
      "performance model's prediction). gnuplot then draws DIR/time.png, speedup.png,\n"
      "efficiency.png, comm_share.png and model.png (one series per method and resolution;\n"
      "--predict-ranks extends the model lines to larger rank counts); each DIR/NAME.gp redraws\n"
      "from its own folder. Methods: sequence (automatic Ulysses x Ring), ulysses, ring, patch.\n"
      "Options may come from an INI file (--config) with the same names. Run it as one process.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    add_sweep_options(o);
    add_model_options(o);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    auto plan = std::make_shared<const SweepPlan>(make_plan(vm, ctx));
    const bool plot_only = vm["plot-only"].as<bool>();
    const std::string records_path = plan->out_dir + "/sweep.jsonl";
    if (plot_only)
      require_input(fs::exists(records_path), "option --plot-only: " + records_path + " does not exist");
    return [plan, plot_only, records_path]() {
      if (!plot_only) return run_sweep(*plan);
      draw_plots(*plan, read_sweep_records(records_path));
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
