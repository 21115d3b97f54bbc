// `fresco sweep`: a scaling study. For every resolution, rank count and method it launches one
// `fresco generate` run (mpiexec -n K outside Slurm, `srun -n K --exclusive` job steps inside an
// allocation), reads the run's seconds per step and per-rank communication from its log,
// appends one JSON record per run to DIR/sweep.jsonl, and draws PNG plots with gnuplot: time and
// speed-up against ranks per method, parallel efficiency, communication share, and the
// performance model (src/model/perf_model.hpp) beside the measurements.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "io/h5_file.hpp"
#include "io/image_file.hpp"
#include "mpi/comm/transports.hpp"
#include "src/cli/commands.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/perf_model.hpp"
#include "src/model/sequence_shard.hpp"
#include "src/model/weights_io.hpp"

extern char** environ;

namespace fresco::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The environment before MPI_Init: the runs the sweep launches must not inherit the variables
// OpenMPI sets for this (singleton) process, or they would join its session.
std::vector<std::string> capture_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}
const std::vector<std::string> g_initial_environment = capture_environment();

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

struct Resolution {
  int64_t width = 0, height = 0;
  std::string name() const { return std::to_string(width) + "x" + std::to_string(height); }
};

struct SweepPlan {
  std::string weights, out_dir, launcher, fresco;
  FluxConfig config;
  std::vector<std::string> methods;
  std::vector<int> ranks;
  std::vector<Resolution> resolutions;
  int64_t steps = 3, txt_len = 8;
  int threads = 1, ranks_per_node = 0, repeats = 1;
  std::vector<int> predict_ranks;  // --predict-ranks: model-only points beyond the measured ones
  // The engine every run uses, passed to generate: --backend, --dtype, --transport, --comm-dtype.
  std::vector<std::pair<std::string, std::string>> engine;
  std::string backend = "cpu";  // --backend, auto resolved as generate resolves it here
  double flops_per_second = 0;  // 0: measured by the one-rank runs
  MachineModel machine;
  bool plots = true;
  std::string gnuplot = "gnuplot";
};

const std::vector<std::string> kMethods = {"sequence", "ulysses", "ring", "patch"};

// Exit status and largest resident set of a launched command, its output in `log`.
struct Launch {
  int status = -1;
  double seconds = 0;
  double peak_rss_mib = -1;  // -1: unknown (srun: the ranks are not our descendants)
};

Launch launch(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const auto& e : g_initial_environment) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  // An intermediate process waits for the launcher so that RUSAGE_CHILDREN covers this run only
  // (the ranks are mpiexec's children, their peak RSS reaches the intermediate through it).
  int fds[2];
  if (pipe(fds) != 0) throw IoError("fresco sweep: pipe() failed");
  const auto start = std::chrono::steady_clock::now();
  const pid_t helper = fork();
  if (helper < 0) throw IoError("fresco sweep: fork() failed");
  if (helper == 0) {
    close(fds[0]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    pid_t child = 0;
    double result[2] = {127, -1};
    if (posix_spawnp(&child, args[0], &actions, nullptr, args.data(), env.data()) == 0) {
      int status = 0;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      result[0] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      rusage usage{};
      getrusage(RUSAGE_CHILDREN, &usage);
      result[1] = double(usage.ru_maxrss) / 1024.0;  // KiB -> MiB
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

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The comma list of option `name` as positive rank counts (InputError naming the option).
std::vector<int> rank_counts(const po::variables_map& vm, const std::string& name) {
  std::vector<int> counts;
  for (const std::string& k : split_list(vm[name].as<std::string>())) {
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(k, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require_input(used == k.size() && value > 0, "option --" + name + ": '" + k + "' is not a positive rank count");
    counts.push_back(value);
  }
  return counts;
}

// The engine options of the runs, for the records.
json engine_record(const SweepPlan& plan) {
  json e = json::object();
  for (const auto& [name, value] : plan.engine) e[name] = value;
  return e;
}

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

struct Measured {
  double seconds_per_step = -1;
  int ulysses = 1, ring = 1;
  double bytes_per_step = 0;      // largest over the group's ranks
  double wait_ms_per_step = 0;    // mean over the group's ranks
  double compute_ms_per_step = 0; // mean over the group's ranks
};

Measured parse_log(const std::string& text) {
  Measured m;
  std::smatch s;
  if (std::regex_search(text, s, std::regex(R"(done \(img_\d+, rank \d+\): ([0-9.eE+-]+) s/step)")))
    m.seconds_per_step = std::stod(s[1]);
  if (std::regex_search(text, s, std::regex(R"(Ulysses (\d+) x Ring (\d+))"))) {
    m.ulysses = std::stoi(s[1]);
    m.ring = std::stoi(s[2]);
  }
  const std::regex row(R"(rank \d+: sent ([0-9.]+) MiB, waited on communication ([0-9.]+) ms, computed ([0-9.-]+) ms)");
  int n = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row); it != std::sregex_iterator(); ++it, ++n) {
    m.bytes_per_step = std::max(m.bytes_per_step, std::stod((*it)[1]) * (1 << 20));
    m.wait_ms_per_step += std::stod((*it)[2]);
    m.compute_ms_per_step += std::stod((*it)[3]);
  }
  if (n) {
    m.wait_ms_per_step /= n;
    m.compute_ms_per_step /= n;
  }
  return m;
}

// ---- plots ------------------------------------------------------------------------------

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;
  bool model = false;  // drawn as a dashed line (the model); measurements as lines with points
  int color = 0;       // 0: the series' position; negative: gray
};

// Writes DIR/NAME.gp (data inline) and runs gnuplot on it; returns the number of series.
int draw(const SweepPlan& plan, const std::string& name, const std::string& title, const std::string& ylabel,
         std::vector<Series> series, bool logy, const std::string& extra = "") {
  series.erase(std::remove_if(series.begin(), series.end(), [](const Series& s) { return s.points.empty(); }),
               series.end());
  if (series.empty()) {
    std::printf("fresco sweep: no successful run to draw in %s.png\n", name.c_str());
    return 0;
  }
  const std::string gp = plan.out_dir + "/" + name + ".gp", png = plan.out_dir + "/" + name + ".png";
  std::ofstream f(gp);
  f << "# drawn by fresco sweep from " << plan.out_dir << "/sweep.jsonl; rerun: gnuplot " << name << ".gp\n";
  f << "set terminal pngcairo size 1000,600 font ',10'\nset output '" << png << "'\n";
  f << "set title '" << title << "'\nset xlabel 'ranks'\nset ylabel '" << ylabel << "'\n";
  f << "set logscale x 2\nset grid\nset key outside right top\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n";
  if (logy) f << "set logscale y\n";
  f << extra;
  int i = 0;
  for (const Series& s : series) {
    f << "$d" << i++ << " << EOD\n";
    for (const auto& [x, y] : s.points) f << x << " " << y << "\n";
    f << "EOD\n";
  }
  f << "plot ";
  for (size_t k = 0; k < series.size(); ++k) {
    f << (k ? ", \\\n     " : "") << "$d" << k << " using 1:2 with "
      << (series[k].model ? "lines dashtype 2 linewidth 2" : "linespoints pointtype 7 linewidth 2")
      << " linecolor ";
    if (series[k].color < 0) f << "rgb '#808080'";  // reference lines (ideal speed-up)
    else f << (series[k].color ? series[k].color : int(k) + 1);
    f << " title '" << series[k].title << "'";
  }
  f << "\n";
  f.close();
  const Launch l = launch({plan.gnuplot, gp}, plan.out_dir + "/" + name + ".gnuplot.log");
  if (l.status != 0)
    throw IoError("fresco sweep: gnuplot failed on " + gp + " (exit " + std::to_string(l.status) + "): " +
                  last_lines(read_text(plan.out_dir + "/" + name + ".gnuplot.log"), 5));
  std::printf("fresco sweep: wrote %s (%zu series)\n", png.c_str(), series.size());
  return int(series.size());
}

// The model's step time of a record's configuration, with the compute rate given or measured
// on one rank at the same resolution.
double model_ms(const SweepPlan& plan, const json& r, double rate) {
  SplitConfig split;
  if (r["method"] == "patch") {
    split.method = "patch";
    split.patches = r["ranks"].get<int>();
  } else {
    split.ulysses = r.value("ulysses", 1);
    split.ring = r.value("ring", 1);
  }
  split.ranks_per_node = plan.ranks_per_node;
  MachineModel machine = plan.machine;
  machine.flops_per_second = rate;
  return 1e3 * predict_step(plan.config, split, r["txt_tokens"].get<int64_t>(), r["img_tokens"].get<int64_t>(), 4.0,
                            machine).step_s;
}

// The model's step time of a method on K ranks that were not measured (--predict-ranks): ulysses
// U = K, ring R = K, patch K patches, sequence the layout the model itself ranks fastest for
// one image on K ranks (what generate's automatic layout picks with the same machine).
std::pair<double, std::string> predicted_ms(const SweepPlan& plan, const std::string& method, int K,
                                            int64_t img_tokens, double rate) {
  MachineModel machine = plan.machine;
  machine.flops_per_second = rate;
  SplitConfig split;
  split.ranks_per_node = plan.ranks_per_node;
  if (method == "patch") {
    split.method = "patch";
    split.patches = K;
  } else if (method == "ulysses") {
    split.ulysses = K;
  } else if (method == "ring") {
    split.ring = K;
  } else {
    LayoutSearch search;
    search.world_size = K;
    search.ranks_per_node = plan.ranks_per_node;
    search.txt_tokens = plan.txt_len;
    search.img_tokens = img_tokens;
    search.machine_for_group = [&](int) { return std::optional<MachineModel>(machine); };
    const LayoutRanking ranking = rank_layouts(plan.config, search);
    if (ranking.chosen >= 0) split = ranking.candidates[size_t(ranking.chosen)].split;
  }
  LayoutCandidate named;
  named.split = split;
  return {1e3 * predict_step(plan.config, split, plan.txt_len, img_tokens, 4.0, machine).step_s, named.name()};
}

void draw_plots(const SweepPlan& plan, const std::vector<json>& records) {
  // Series per (method, resolution); a one-rank run belongs to every method's series.
  std::vector<Series> time, speedup, efficiency, share, model;
  std::map<std::string, double> base;  // resolution -> seconds per step on one rank
  for (const json& r : records)
    if (r["ranks"] == 1 && r["status"] == "ok") base[r["resolution"]] = r["ms_per_step"].get<double>();
  std::set<int> all_ranks;
  for (const Resolution& res : plan.resolutions)
    for (const std::string& method : plan.methods) {
      const std::string label = method + " " + res.name();
      const int color = int(time.size()) + 1;
      Series t{label, {}}, sp{label, {}}, ef{label, {}}, sh{label, {}}, mm{label + " measured", {}, false, color},
          mp{label + " model", {}, true, color};
      for (const json& r : records) {
        if (r["status"] != "ok" || r["resolution"] != res.name()) continue;
        if (r["method"] != method && r["ranks"] != 1) continue;
        const double K = r["ranks"].get<int>(), ms = r["ms_per_step"].get<double>();
        all_ranks.insert(int(K));
        t.points.emplace_back(K, ms);
        mm.points.emplace_back(K, ms);
        const double rate = plan.flops_per_second > 0 ? plan.flops_per_second
                            : base.count(res.name()) ? r["flops_per_step"].get<double>() / (1e-3 * base[res.name()])
                                                     : 0.0;
        if (rate > 0) mp.points.emplace_back(K, model_ms(plan, r, rate));
        sh.points.emplace_back(K, 100.0 * r["comm_share"].get<double>());
        if (base.count(res.name())) {
          sp.points.emplace_back(K, base[res.name()] / ms);
          ef.points.emplace_back(K, 100.0 * base[res.name()] / ms / K);
        }
      }
      // The model beyond the measurements (--predict-ranks), at the rate the one-rank run measured.
      const int64_t img_tokens = (res.width / 16) * (res.height / 16);
      const double rate = plan.flops_per_second > 0 ? plan.flops_per_second
                          : base.count(res.name())
                              ? flux_step_flops(plan.config, plan.txt_len, img_tokens).total() / (1e-3 * base[res.name()])
                              : 0.0;
      for (int K : plan.predict_ranks) {
        if (rate <= 0 || std::any_of(mp.points.begin(), mp.points.end(), [&](const auto& p) { return p.first == K; }))
          continue;
        const auto [ms, layout] = predicted_ms(plan, method, K, img_tokens, rate);
        mp.points.emplace_back(K, ms);
        std::printf("fresco sweep: model, %s on %d ranks (%s): %.4g ms per step\n", label.c_str(), K, layout.c_str(), ms);
      }
      for (Series* s : {&t, &sp, &ef, &sh, &mm, &mp}) std::sort(s->points.begin(), s->points.end());
      time.push_back(t);
      speedup.push_back(sp);
      efficiency.push_back(ef);
      share.push_back(sh);
      model.push_back(mm);
      model.push_back(mp);
    }
  const std::string what = plan.config.name + ", " + std::to_string(plan.steps) + " steps, " +
                           (plan.backend == "cuda" ? std::string("one GPU/rank")
                                                   : std::to_string(plan.threads) + " thread(s)/rank");
  draw(plan, "time", "time per step (" + what + ")", "ms per step", time, true);
  const int max_ranks = all_ranks.empty() ? 1 : *all_ranks.rbegin();
  std::vector<Series> sp = speedup;
  Series ideal{"ideal", {}, true, -1};
  for (int k : all_ranks) ideal.points.emplace_back(k, k);
  sp.insert(sp.begin(), ideal);
  draw(plan, "speedup", "speed-up over one rank (" + what + ")", "speed-up", sp, false,
       "set yrange [0:" + std::to_string(max_ranks + 1) + "]\n");
  draw(plan, "efficiency", "parallel efficiency (" + what + ")", "efficiency (%)", efficiency, false,
       "set yrange [0:*]\n");
  draw(plan, "comm_share", "exposed communication share of the step (" + what + ")",
       "communication wait (% of step)", share, false, "set yrange [0:*]\n");
  draw(plan, "model", "model vs measured (" + what + ")", "ms per step", model, true);
}

// ---- the sweep --------------------------------------------------------------------------

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

int run_sweep(SweepPlan& plan) {
  fs::create_directories(plan.out_dir + "/runs");
  const std::string records_path = plan.out_dir + "/sweep.jsonl";
  std::printf("fresco sweep: %zu method(s) x %zu rank count(s) x %zu resolution(s), %lld steps, %s, "
              "records appended to %s\n",
              plan.methods.size(), plan.ranks.size(), plan.resolutions.size(), (long long)plan.steps,
              plan.launcher.c_str(), records_path.c_str());
  std::fflush(stdout);
  const json hardware = {{"host", host_name()},
                         {"cpu", cpu_model()},
                         {"cores", int(std::thread::hardware_concurrency())},
                         {"backend", plan.backend},
                         {"threads_per_rank", plan.threads},
                         {"slurm_job", std::getenv("SLURM_JOB_ID") ? std::getenv("SLURM_JOB_ID") : ""}};
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
    const int64_t img_tokens = (res.width / 16) * (res.height / 16);
    double rate = plan.flops_per_second;
    for (int K : plan.ranks) {
      for (const std::string& method : plan.methods) {
        if (K == 1 && method != plan.methods.front()) continue;  // one baseline run per resolution
        for (int rep = 0; rep < plan.repeats; ++rep) {
          const std::string id = res.name() + "_" + (K == 1 ? "single" : method) + "_np" + std::to_string(K) +
                                 (plan.repeats > 1 ? "_r" + std::to_string(rep) : "");
          const std::string out = plan.out_dir + "/runs/" + id, log = out + ".log";
          fs::remove_all(out);
          std::vector<std::string> argv = launcher_prefix(plan, K);
          for (const std::string& a :
               {plan.fresco, std::string("generate"), std::string("--weights"), plan.weights,
                std::string("--prompts"), prompts, std::string("--out"), out, std::string("--threads"),
                std::to_string(plan.threads)})
            argv.push_back(a);
          for (const std::string& a :
               method_options(method, K, plan.launcher == "srun" ? 0 : plan.ranks_per_node))
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
          const std::string text = read_text(log);
          Measured m = parse_log(text);
          try {  // the result's own seconds per step (the log rounds to milliseconds)
            const std::string result = image_result_path(out, 0);
            if (l.status == 0 && fs::exists(result))
              m.seconds_per_step = h5::File::open(result).read_double_attr("seconds_per_step");
          } catch (const Error&) {
          }
          fs::remove_all(out);  // the latents are not the point
          json r = {{"time", now_utc()},
                    {"model", plan.config.name},
                    {"method", K == 1 ? std::string("single") : method},
                    {"ranks", K},
                    {"resolution", res.name()},
                    {"width", res.width},
                    {"height", res.height},
                    {"txt_tokens", plan.txt_len},
                    {"img_tokens", img_tokens},
                    {"steps", plan.steps},
                    {"launcher", plan.launcher},
                    {"engine", engine_record(plan)},
                    {"log", log},
                    {"hardware", hardware}};
          if (l.status != 0 || m.seconds_per_step <= 0) {
            r["status"] = "failed";
            r["exit_status"] = l.status;
            ++failures;
            std::printf(" FAILED (exit %d, see %s)\n%s", l.status, log.c_str(), last_lines(text, 4).c_str());
          } else {
            SplitConfig split;
            if (method == "patch") {
              split.method = "patch";
              split.patches = K;
            } else {
              split.ulysses = m.ulysses;
              split.ring = m.ring;
            }
            split.ranks_per_node = plan.ranks_per_node;
            const double flops = flux_step_flops(plan.config, plan.txt_len, img_tokens).total();
            const double ms = 1e3 * m.seconds_per_step;
            if (K == 1 && rate <= 0) rate = flops / m.seconds_per_step;  // the measured compute rate
            r["status"] = "ok";
            r["ulysses"] = method == "patch" ? 1 : m.ulysses;
            r["ring"] = method == "patch" ? 1 : m.ring;
            r["patches"] = method == "patch" ? K : 1;
            r["ms_per_step"] = ms;
            r["flops_per_step"] = flops;
            r["tflops"] = flops / m.seconds_per_step / 1e12;
            r["bytes_sent_per_step"] = m.bytes_per_step;  // largest over the ranks
            r["comm_wait_ms_per_step"] = m.wait_ms_per_step;  // exposed communication, mean over the ranks
            r["comm_share"] = K > 1 ? m.wait_ms_per_step / ms : 0.0;
            // the largest rank's peak resident memory; unknown under srun (the ranks are
            // slurmstepd's children, not ours)
            r["peak_rss_mib"] = plan.launcher == "srun" || l.peak_rss_mib < 0 ? json(nullptr) : json(l.peak_rss_mib);
            r["wall_seconds"] = l.seconds;
            if (rate > 0) {
              MachineModel machine = plan.machine;
              machine.flops_per_second = rate;
              const StepPrediction pred = predict_step(plan.config, split, plan.txt_len, img_tokens, 4.0, machine);
              const StepBytes bytes = step_bytes(plan.config, split, plan.txt_len, img_tokens, 4.0);
              r["model_ms_per_step"] = 1e3 * pred.step_s;
              r["model_exposed_comm_ms"] = 1e3 * pred.exposed_s;
              r["model_bytes_per_step"] = bytes.total();
              r["model_flops_per_second"] = rate;
            }
            std::printf(" %.2f ms/step, %.4f TFLOP/s, comm wait %.1f%%%s\n", ms, r["tflops"].get<double>(),
                        100.0 * r["comm_share"].get<double>(),
                        r.contains("model_ms_per_step")
                            ? (", model " + std::to_string(r["model_ms_per_step"].get<double>()) + " ms").c_str()
                            : "");
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

std::string self_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "fresco" : p.string();
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

}  // namespace

Command sweep_command() {
  Command c;
  c.name = "sweep";
  c.summary = "scaling study: run generate over methods x ranks x resolutions, JSON + PNG plots";
  c.usage = "fresco sweep --weights W.h5 --out DIR [--methods ulysses,ring] [--ranks 1,2,4] [--resolutions 256x256]";
  c.details =
      "Runs one `fresco generate` of one image per (resolution, rank count, method): `mpiexec -n K`\n"
      "outside Slurm, `srun -n K --exclusive` job steps inside an allocation (--launcher). One\n"
      "rank-1 run per resolution is the baseline of every method. Each run appends a JSON record\n"
      "to DIR/sweep.jsonl (configuration, hardware, ms/step, TFLOP/s, bytes sent, exposed\n"
      "communication, peak memory, the performance model's prediction). gnuplot then draws\n"
      "DIR/time.png, speedup.png, efficiency.png, comm_share.png and model.png (one series per\n"
      "method and resolution; --predict-ranks extends the model lines to larger rank counts).\n"
      "Methods: sequence (automatic Ulysses x Ring), ulysses, ring, patch.\n"
      "Options may come from an INI file (--config) with the same names. Run it as one process.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("out", po::value<std::string>()->required(), "result directory (sweep.jsonl, PNG plots, runs/)")
        ("methods", po::value<std::string>()->default_value("ulysses,ring"),
         "comma list of: sequence, ulysses, ring, patch")
        ("ranks", po::value<std::string>()->default_value("1,2,4"), "comma list of rank counts")
        ("resolutions", po::value<std::string>()->default_value("256x256"), "comma list of WIDTHxHEIGHT")
        ("steps", po::value<int64_t>()->default_value(3), "denoising steps of each run")
        ("txt-len", po::value<int64_t>()->default_value(64), "text tokens of the prompt")
        ("repeats", po::value<int>()->default_value(1), "runs of each configuration")
        ("launcher", po::value<std::string>()->default_value("auto"),
         "mpiexec, srun, or auto (srun inside a Slurm allocation, else mpiexec)")
        ("ranks-per-node", po::value<int>()->default_value(0),
         "emulated ranks per node, passed to generate and used by the model (0: one node)")
        ("flops-per-second", po::value<double>()->default_value(0),
         "compute rate of one rank for the model (0: measured by the one-rank runs)")
        ("intra-node-gbs", po::value<double>()->default_value(283), "model: intra-node bandwidth, GB/s per rank")
        ("inter-node-gbs", po::value<double>()->default_value(25), "model: inter-node bandwidth, GB/s per rank")
        ("latency-us", po::value<double>()->default_value(5), "model: latency of one message, microseconds")
        ("no-plots", po::bool_switch(), "write the records only (no gnuplot)")
        ("plot-only", po::bool_switch(), "redraw the plots from DIR/sweep.jsonl without running")
        ("backend", po::value<std::string>()->default_value("auto"), "passed to every run: auto, cpu or cuda")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "passed to every run: auto (bf16 on cuda, f32 on cpu, as generate), f32 or bf16")
        ("transport", po::value<std::string>()->default_value("auto"),
         "passed to every run: auto, mpi, ipc, nccl or ucx (see fresco generate --help)")
        ("comm-dtype", po::value<std::string>()->default_value("auto"),
         "passed to every run: auto or e4m3 (FP8 communication)")
        ("predict-ranks", po::value<std::string>()->default_value(""),
         "comma list of rank counts to extend each model line to (model.png), at the compute rate\n"
         "the one-rank runs measured: plan a larger run from a small sweep (with --plot-only too)");
    add_model_options(o);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    require_input(ctx.mpi.size() == 1, "fresco sweep runs as one process (it launches the runs itself); got " +
                                           std::to_string(ctx.mpi.size()) + " ranks");
    auto plan = std::make_shared<SweepPlan>();
    plan->weights = vm["weights"].as<std::string>();
    plan->out_dir = vm["out"].as<std::string>();
    plan->fresco = self_executable();
    plan->steps = vm["steps"].as<int64_t>();
    plan->txt_len = vm["txt-len"].as<int64_t>();
    plan->repeats = vm["repeats"].as<int>();
    plan->threads = std::max(1, vm["threads"].as<int>());
    // Checked here, once, with generate's own rules (an error names the option).
    for (const char* name : {"backend", "dtype", "transport", "comm-dtype"})
      plan->engine.emplace_back(name, vm[name].as<std::string>());
    plan->backend = backend_option(vm);
    (void)resolve_compute_dtype(vm["dtype"].as<std::string>(), plan->backend);
    check_transport_name(vm["transport"].as<std::string>());
    (void)fp8_comm_option(vm);
    plan->ranks_per_node = vm["ranks-per-node"].as<int>();
    plan->flops_per_second = vm["flops-per-second"].as<double>();
    plan->machine.intra_node_bw = vm["intra-node-gbs"].as<double>() * 1e9;
    plan->machine.inter_node_bw = vm["inter-node-gbs"].as<double>() * 1e9;
    plan->machine.latency = vm["latency-us"].as<double>() * 1e-6;
    plan->plots = !vm["no-plots"].as<bool>();
    plan->predict_ranks = rank_counts(vm, "predict-ranks");
    require_input(plan->steps > 0, "option --steps must be positive (got " + std::to_string(plan->steps) + ")");
    require_input(plan->txt_len > 0, "option --txt-len must be positive");
    require_input(plan->repeats > 0, "option --repeats must be positive");
    require_input(plan->ranks_per_node >= 0, "option --ranks-per-node must not be negative");
    require_input(plan->machine.intra_node_bw > 0 && plan->machine.inter_node_bw > 0,
                  "options --intra-node-gbs and --inter-node-gbs must be positive");

    for (const std::string& m : split_list(vm["methods"].as<std::string>())) {
      require_input(std::find(kMethods.begin(), kMethods.end(), m) != kMethods.end(),
                    "option --methods: unknown method '" + m + "' (known: sequence, ulysses, ring, patch)");
      if (std::find(plan->methods.begin(), plan->methods.end(), m) == plan->methods.end())
        plan->methods.push_back(m);
    }
    require_input(!plan->methods.empty(), "option --methods: no method given");
    plan->ranks = rank_counts(vm, "ranks");
    require_input(!plan->ranks.empty(), "option --ranks: no rank count given");
    std::sort(plan->ranks.begin(), plan->ranks.end());
    plan->ranks.erase(std::unique(plan->ranks.begin(), plan->ranks.end()), plan->ranks.end());
    for (const std::string& r : split_list(vm["resolutions"].as<std::string>())) {
      Resolution res;
      char x = 0, end = 0;
      long long w = 0, h = 0;
      require_input(std::sscanf(r.c_str(), "%lld%c%lld%c", &w, &x, &h, &end) == 3 && x == 'x' && w > 0 && h > 0 &&
                        w % 16 == 0 && h % 16 == 0,
                    "option --resolutions: '" + r + "' is not WIDTHxHEIGHT with positive multiples of 16");
      res.width = w;
      res.height = h;
      plan->resolutions.push_back(res);
    }
    require_input(!plan->resolutions.empty(), "option --resolutions: no resolution given");

    std::string launcher = vm["launcher"].as<std::string>();
    require_input(launcher == "auto" || launcher == "mpiexec" || launcher == "srun",
                  "option --launcher must be auto, mpiexec or srun (got '" + launcher + "')");
    const char* job = std::getenv("SLURM_JOB_ID");
    if (launcher == "auto") launcher = job ? "srun" : "mpiexec";
    plan->launcher = launcher;
    const int max_ranks = plan->ranks.back();
    if (launcher == "srun") {
      require_input(job != nullptr, "option --launcher srun needs a Slurm allocation (sbatch or salloc); "
                                    "outside Slurm use --launcher mpiexec");
      const char* ntasks = std::getenv("SLURM_NTASKS");
      const int tasks = ntasks ? std::atoi(ntasks) : 1;
      require_input(max_ranks <= tasks, "option --ranks: " + std::to_string(max_ranks) +
                                            " ranks do not fit the allocation's " + std::to_string(tasks) +
                                            " task(s) (sbatch -n)");
    }
    const std::string weights = plan->weights;
    require_input(random_weights_seed(weights) || fs::exists(weights), "weights file " + weights + " does not exist");
    plan->config = preset_for_weights(weights, vm["model"].as<std::string>());
    // Every configuration must fit the image: a sequence shard needs a token per rank, a patch a
    // row of the latent grid per rank (the same checks generate makes).
    for (const Resolution& res : plan->resolutions)
      for (int K : plan->ranks)
        for (const std::string& m : plan->methods) {
          const int64_t gh = res.height / 16, gw = res.width / 16;
          const std::string what = "option --ranks: " + std::to_string(K) + " ranks do not fit " + res.name() +
                                   " with method " + m + ": ";
          if (m == "patch")
            require_input(gh >= K, what + "patch parallelism needs a latent grid row per rank (" +
                                       std::to_string(gh) + " rows)");
          else
            require_input(plan->txt_len + gh * gw >= K, what + "a sequence shard needs a token per rank (" +
                                                             std::to_string(plan->txt_len + gh * gw) + " tokens)");
        }
    if (plan->plots) {
      const char* g = std::getenv("FRESCO_GNUPLOT");
      if (g && *g) plan->gnuplot = g;
      require_input(on_path(plan->gnuplot), "gnuplot not found (" + plan->gnuplot +
                                                "): install it (apt-get install gnuplot-nox, or "
                                                "scripts/install-deps.sh) or pass --no-plots");
    }
    const bool plot_only = vm["plot-only"].as<bool>();
    if (plot_only)
      require_input(fs::exists(plan->out_dir + "/sweep.jsonl"),
                    "option --plot-only: " + plan->out_dir + "/sweep.jsonl does not exist");
    return [plan, plot_only]() {
      if (!plot_only) return run_sweep(*plan);
      std::vector<json> records;
      std::ifstream in(plan->out_dir + "/sweep.jsonl");
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) records.push_back(json::parse(line));
      draw_plots(*plan, records);
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
