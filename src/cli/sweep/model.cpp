// The performance model (src/model/perf_model.hpp) beside the sweep's measurements and beyond
// them (--predict-ranks), priced as generate's automatic layout prices a run: the machine of
// engine_machine for the backend, GPU kind and dtype the run used, values of the compute dtype's
// size; what the user gave (--flops-per-second, the link options) and the rate a one-rank run
// measured replace the defaults.
#include "src/cli/sweep/sweep.hpp"
#include "src/runtime/engine.hpp"

namespace fresco::cli::sweep {

namespace {

struct Priced {
  MachineModel machine;
  double bytes_per_value = 4;
};

Priced priced(const SweepPlan& plan, const json& record, double measured_rate) {
  // The run's own engine where its record says (generate resolved --backend auto and --dtype
  // auto itself, and named its GPU); else the sweep's resolution of the same options.
  EngineChoice engine = plan.engine_choice;
  std::string device;
  if (const auto e = record.find("run_engine"); e != record.end()) {
    engine.backend = e->at("backend").get<std::string>();
    engine.compute = resolve_compute_dtype(e->at("dtype").get<std::string>(), engine.backend);
    engine.fp8 = fp8_dtype_option(e->at("dtype").get<std::string>());
    device = e->value("device", "");
  }
  Priced p;
  p.machine = engine_machine(engine, device, plan.threads);
  p.bytes_per_value = double(dtype_size(engine.compute));
  if (plan.flops_per_second > 0) {
    p.machine.flops_per_second = plan.flops_per_second;
  } else if (measured_rate > 0) {
    p.machine.flops_per_second = measured_rate;
    p.machine.label += ", the rate measured on one rank";
  }
  if (plan.intra_node_gbs > 0) p.machine.intra_node_bw = plan.intra_node_gbs * 1e9;
  if (plan.inter_node_gbs > 0) p.machine.inter_node_bw = plan.inter_node_gbs * 1e9;
  if (plan.latency_us > 0) {
    // The option sets one latency for every message, as it always has.
    p.machine.latency = plan.latency_us * 1e-6;
    p.machine.inter_node_latency = -1;
  }
  return p;
}

}  // namespace

ModelPoint model_point(const SweepPlan& plan, const json& r, double measured_rate) {
  SplitConfig split;
  if (r.at("method") == "patch") {
    split.method = "patch";
    split.patches = r.at("ranks").get<int>();
  } else {
    split.ulysses = r.value("ulysses", 1);
    split.ring = r.value("ring", 1);
  }
  split.ranks_per_node = plan.ranks_per_node;
  const Priced p = priced(plan, r, measured_rate);
  const int64_t txt = r.at("txt_tokens").get<int64_t>(), img = r.at("img_tokens").get<int64_t>();
  const StepPrediction pred = predict_step(plan.config, split, txt, img, p.bytes_per_value, p.machine);
  return {1e3 * pred.step_s, 1e3 * pred.exposed_s, step_bytes(plan.config, split, txt, img, p.bytes_per_value).total(),
          p.machine.describe()};
}

// ulysses U = K, ring R = K, patch K patches, sequence the layout the model itself ranks
// fastest for one image on K ranks (what generate's automatic layout picks with the same
// machine).
std::pair<double, std::string> predicted_ms(const SweepPlan& plan, const json& reference, const std::string& method,
                                            int K, int64_t img_tokens, double measured_rate) {
  const Priced p = priced(plan, reference, measured_rate);
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
    search.bytes_per_value = p.bytes_per_value;
    search.machine_for_group = [&](int) { return std::optional<MachineModel>(p.machine); };
    const LayoutRanking ranking = rank_layouts(plan.config, search);
    if (ranking.chosen >= 0) split = ranking.candidates[size_t(ranking.chosen)].split;
  }
  LayoutCandidate named;
  named.split = split;
  return {1e3 * predict_step(plan.config, split, plan.txt_len, img_tokens, p.bytes_per_value, p.machine).step_s,
          named.name()};
}

}  // namespace fresco::cli::sweep
