// What the sweep measures and writes: a run's figures read from the JSON run record generate
// writes (--record; docs/file-formats.md, "Run record"), never from its log text, and the
// fields of the sweep's own records (DIR/sweep.jsonl).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

#include "fresco/version.hpp"
#include "src/cli/sweep/sweep.hpp"
#include "src/core/error.hpp"
#include "src/model/flux_weights.hpp"
#include "src/runtime/step_runner.hpp"

namespace fresco::cli::sweep {

namespace {

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

// The figures of one parsed record (json exceptions for missing or mistyped fields).
RunFigures figures(const json& r, const std::string& path) {
  if (r.at("schema") != "fresco-run-record")
    throw IoError("run record " + path + " is not a fresco run record (schema " + r.at("schema").dump() + ")");
  const json& images = r.at("images");
  if (images.size() != 1)
    throw IoError("run record " + path + " holds " + std::to_string(images.size()) +
                  " images; a sweep run makes one");
  const json& image = images.at(0);
  if (!image.at("ok").get<bool>())
    throw IoError("run record " + path + ": the image is not ok (non-finite values)");
  RunFigures f;
  // The steady state: the first step of each kind (step_kind: the graph kind, e.g. DistriFusion's
  // synchronous and displaced steps) plans, sizes buffers and captures its graph; the rest run
  // as every later image's steps will, replayed or, where nothing can be captured (the CPU
  // backend), eagerly again. step_eager cannot tell the two apart there, so the kinds decide.
  const auto step_ms = image.at("step_ms").get<std::vector<double>>();
  const auto kinds = image.at("step_kind").get<std::vector<int>>();
  if (step_ms.size() != kinds.size())
    throw IoError("run record " + path + ": step_ms and step_kind differ in length");
  std::vector<double> steady;
  std::set<int> seen;
  for (size_t i = 0; i < step_ms.size(); ++i)
    if (!seen.insert(kinds[i]).second) steady.push_back(step_ms[i]);
  if (steady.empty())
    throw InputError("run record " + path + ": each of its " + std::to_string(step_ms.size()) +
                     " step(s) is the first of its kind (warm-up): raise --steps so that one is left to time");
  f.ms_per_step = median(steady);
  f.steady_steps = int(steady.size());
  f.engine = r.at("engine");
  f.model = r.at("model");
  f.ulysses = f.engine.at("ulysses").get<int>();
  f.ring = f.engine.at("ring").get<int>();
  f.patches = f.engine.at("patches").get<int>();
  // Communication: per rank where the group has several (the largest sender, the mean wait and
  // its share of each rank's step); one rank sends nothing and waits on no one.
  if (const auto ranks = image.find("per_rank"); ranks != image.end() && !ranks->empty()) {
    double wait = 0, share = 0;
    for (const json& k : *ranks) {
      const double w = k.at("wait_ms_per_step").get<double>(), c = k.at("compute_ms_per_step").get<double>();
      f.bytes_sent_per_step = std::max(f.bytes_sent_per_step, k.at("mib_sent_per_step").get<double>() * (1 << 20));
      wait += w;
      share += w + c > 0 ? w / (w + c) : 0.0;
    }
    f.wait_ms_per_step = wait / double(ranks->size());
    f.comm_share = share / double(ranks->size());
  } else {
    f.bytes_sent_per_step = image.at("mib_sent_per_step").get<double>() * (1 << 20);
  }
  return f;
}

}  // namespace

RunFigures read_run_record(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("no run record " + path + " (the run exited 0 without writing it)");
  json r;
  try {
    r = json::parse(in);
  } catch (const json::exception& e) {
    throw IoError("run record " + path + " is not JSON: " + e.what());
  }
  try {
    return figures(r, path);
  } catch (const json::exception& e) {
    throw IoError("run record " + path + " lacks a field the sweep reads: " + e.what());
  }
}

json record_header(const SweepPlan& plan) {
  const FluxConfig& c = plan.config;
  const char* job = std::getenv("SLURM_JOB_ID");
  json engine = json::object();
  for (const auto& [name, value] : plan.engine) engine[name] = value;
  return {{"version", kVersion},
          {"commit", kCommit},
          {"command_line", plan.command_line},
          {"settings", plan.settings},
          {"model", c.name},
          // What the performance model and the FLOP count depend on.
          {"model_parameters",
           {{"parameters", flux_parameter_count(c)},
            {"hidden", c.hidden},
            {"heads", c.heads},
            {"head_dim", c.head_dim()},
            {"depth", c.depth},
            {"depth_single", c.depth_single},
            {"mlp_ratio", c.mlp_ratio}}},
          {"launcher", plan.launcher},
          {"ranks_per_node", plan.ranks_per_node},
          {"engine", engine},
          {"hardware",
           {{"host", host_name()},
            {"cpu", cpu_model()},
            {"cores", int(std::thread::hardware_concurrency())},
            {"backend", plan.engine_choice.backend},
            {"threads_per_rank", plan.threads},
            {"slurm_job", job ? job : ""}}}};
}

std::vector<json> read_sweep_records(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot read the sweep records " + path);
  std::vector<json> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      records.push_back(json::parse(line));
    } catch (const json::exception& e) {
      throw IoError(path + ", line " + std::to_string(number) + ": not a JSON record (" + e.what() + ")");
    }
  }
  return records;
}

}  // namespace fresco::cli::sweep
