#include "src/model/perf_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace fresco {

namespace {
int attention_layers(const FluxConfig& c) { return c.depth + c.depth_single; }
// H'/H: the share of attention work a Ulysses group of U does with heads padded to H' = U·⌈H/U⌉.
double head_padding(const FluxConfig& c, int U) {
  return double(U * ((c.heads + U - 1) / U)) / double(c.heads);
}
}  // namespace

bool spans_nodes(int size, int ranks_per_node) {
  if (size <= 1 || ranks_per_node <= 0) return false;
  return size > ranks_per_node || ranks_per_node % size != 0;
}

MachineModel gpu_machine(const std::string& device, bool bf16) {
  MachineModel m;
  m.intra_node_bw = 283e9;
  m.inter_node_bw = 25e9;
  m.latency = 5e-6;
  // Measured FLUX.1-dev step rates (perf_model.hpp); the label says which one applies.
  if (!bf16) {
    m.flops_per_second = 26e12;
    m.label = "GPU rank defaults (f32: the rate measured on an H100)";
  } else if (device.find("H200") != std::string::npos) {
    m.flops_per_second = 607e12;
    m.label = "GPU rank defaults (bf16, measured on an H200)";
  } else if (device.find("H100") != std::string::npos) {
    m.flops_per_second = 577e12;
    m.label = "GPU rank defaults (bf16, measured on an H100)";
  } else {
    m.flops_per_second = 600e12;
    m.label = "GPU rank defaults (bf16 on " + (device.empty() ? std::string("an unknown GPU") : device) +
              ": assumed 600 TFLOP/s, not measured)";
  }
  return m;
}

MachineModel cpu_machine(int threads_per_rank) {
  MachineModel m;
  const int threads = std::max(1, threads_per_rank);
  m.flops_per_second = kCpuFlopsPerThread * threads;
  m.intra_node_bw = 2e9;
  m.inter_node_bw = 1e9;
  m.latency = 50e-6;
  m.label = "CPU rank defaults, " + std::to_string(threads) + " thread(s)";
  return m;
}

std::string MachineModel::describe() const {
  const auto rate = [](double flops) {
    char buf[32];
    if (flops >= 1e12) std::snprintf(buf, sizeof buf, "%.4g TFLOP/s", flops / 1e12);
    else std::snprintf(buf, sizeof buf, "%.4g GFLOP/s", flops / 1e9);
    return std::string(buf);
  };
  char buf[256];
  const double inter_latency = inter_node_latency >= 0 ? inter_node_latency : latency;
  std::snprintf(buf, sizeof buf, "%s: %s, links %.4g GB/s in a node, %.4g GB/s between nodes, %.3g/%.3g us",
                label.c_str(), rate(flops_per_second).c_str(), intra_node_bw / 1e9, inter_node_bw / 1e9,
                latency * 1e6, inter_latency * 1e6);
  return buf;
}

StepBytes step_bytes(const FluxConfig& c, const SplitConfig& s, int64_t txt_tokens, int64_t img_tokens,
                     double b) {
  StepBytes out;
  const int G = s.group_size();
  if (G <= 1) return out;
  const double L = double(txt_tokens + img_tokens), n = L / G, layers = attention_layers(c);
  if (s.method == "patch") {
    // each rank all-gathers its fresh K and V rows (2·n·d values) to the G-1 others
    out.patch = layers * b * 2.0 * n * c.hidden * (G - 1);
    return out;
  }
  const int U = s.ulysses, R = s.ring;
  const double padded = double(U) * ((c.heads + U - 1) / U) * c.head_dim();  // H'·D
  out.ulysses = layers * b * n * padded * 4.0 * (U - 1) / U;
  out.ring = layers * b * n * padded * 2.0 * (R - 1);
  return out;
}

StepPrediction predict_step(const FluxConfig& c, const SplitConfig& s, int64_t txt_tokens, int64_t img_tokens,
                            double b, const MachineModel& m) {
  StepPrediction p;
  const int G = std::max(1, s.group_size());
  const StepFlops flops = flux_step_flops(c, txt_tokens, img_tokens);
  // Padded Ulysses heads attend too (to zeros): attention work grows by H'/H.
  const double padding = s.method == "patch" ? 1.0 : head_padding(c, std::max(1, s.ulysses));
  const double attention_s = flops.attention * padding / G / m.flops_per_second;
  p.compute_s = (flops.total() - flops.attention) / G / m.flops_per_second + attention_s;
  if (G == 1) {
    p.step_s = p.compute_s;
    return p;
  }
  const StepBytes bytes = step_bytes(c, s, txt_tokens, img_tokens, b);
  const int layers = c.depth + c.depth_single;
  const auto bw = [&](bool crosses) { return crosses ? m.inter_node_bw : m.intra_node_bw; };
  const auto lat = [&](bool crosses) {
    return crosses && m.inter_node_latency >= 0 ? m.inter_node_latency : m.latency;
  };
  const bool group_crosses = spans_nodes(G, s.ranks_per_node);
  if (s.method == "patch") {
    // all-gather over the group; overlapped with the whole step (asynchronous after warm-up)
    const double t = bytes.patch / bw(group_crosses) + layers * lat(group_crosses) * (G - 1);
    p.comm_s = t;
    p.exposed_s = std::max(0.0, t - p.compute_s);
  } else {
    // Ulysses groups are consecutive ranks: they cross nodes when U exceeds or does not tile a
    // node; the Ring's neighbours are U ranks apart and cross nodes as soon as the group does.
    const bool ulysses_crosses = spans_nodes(s.ulysses, s.ranks_per_node);
    // Per layer, Ulysses runs two rounds of all-to-all (q, k and v together, then o), each
    // one latency (the U-1 peers are served at once); the Ring R-1 steps one after another.
    const double tu = bytes.ulysses / bw(ulysses_crosses) + (s.ulysses > 1 ? layers * 2 * lat(ulysses_crosses) : 0.0);
    const double tr = bytes.ring / bw(group_crosses) + layers * lat(group_crosses) * (s.ring - 1);
    // The Ring's step s moves the next block while block s is attended to: R-1 transfers hide
    // behind R-1 of the R blocks' attention (perfect overlap assumed: it favours the Ring a little).
    const double hideable_s = attention_s * (s.ring - 1) / s.ring;
    p.comm_s = tu + tr;
    p.exposed_s = tu + std::max(0.0, tr - hideable_s);
  }
  p.step_s = p.compute_s + p.exposed_s;
  return p;
}

std::string LayoutCandidate::name() const {
  const int G = split.group_size();
  if (G == 1) return "1 rank";
  if (split.method == "patch") return std::to_string(G) + " patches";
  return "Ulysses " + std::to_string(split.ulysses) + " x Ring " + std::to_string(split.ring);
}

LayoutRanking rank_layouts(const FluxConfig& c, const LayoutSearch& q) {
  LayoutRanking out;
  const int world = std::max(1, q.world_size);
  const int64_t images = std::max<int64_t>(1, q.images);
  // One node when the emulated or detected node holds the whole world.
  const int per_node = q.ranks_per_node > 0 && q.ranks_per_node < world ? q.ranks_per_node : 0;
  for (int G = 1; G <= world; ++G) {
    if (world % G != 0 || int64_t(world / G) > images) continue;  // a group would start idle
    const std::optional<MachineModel> machine =
        q.machine_for_group ? q.machine_for_group(G) : std::optional<MachineModel>(MachineModel{});
    if (!machine) continue;
    std::vector<SplitConfig> splits;
    if (q.method == "patch") {
      SplitConfig s;
      s.method = G > 1 ? "patch" : "sequence";
      s.patches = G;
      splits.push_back(s);
    } else {
      for (int U = 1; U <= G; ++U) {
        if (G % U != 0 || (U > 1 && U > c.heads)) continue;
        SplitConfig s;
        s.ulysses = U;
        s.ring = G / U;
        splits.push_back(s);
      }
    }
    for (SplitConfig& s : splits) {
      s.ranks_per_node = per_node;
      LayoutCandidate cand;
      cand.split = s;
      cand.groups = world / G;
      cand.rounds = (images + cand.groups - 1) / cand.groups;
      cand.machine = machine->describe();
      cand.step = predict_step(c, s, q.txt_tokens, q.img_tokens, q.bytes_per_value, *machine);
      cand.batch_step_s = double(cand.rounds) * cand.step.step_s;
      out.candidates.push_back(cand);
    }
  }
  std::stable_sort(out.candidates.begin(), out.candidates.end(),
                   [](const LayoutCandidate& a, const LayoutCandidate& b) { return a.batch_step_s < b.batch_step_s; });
  if (out.candidates.empty()) return out;
  // The smallest group within the margin of the best; among its factorizations the fastest
  // (the list is sorted, so the first one met).
  const double limit = out.candidates.front().batch_step_s * (1 + kLargerGroupMargin);
  for (size_t i = 0; i < out.candidates.size() && out.candidates[i].batch_step_s <= limit; ++i)
    if (out.chosen < 0 ||
        out.candidates[i].split.group_size() < out.candidates[size_t(out.chosen)].split.group_size())
      out.chosen = int(i);
  return out;
}

std::string LayoutRanking::explain(int alternatives) const {
  if (chosen < 0) return "no layout fits";
  const auto line = [](const LayoutCandidate& k) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%d group(s) x %s: %lld round(s) x %.3g ms/step (compute %.3g + exposed comm %.3g)",
                  k.groups, k.name().c_str(), (long long)k.rounds, 1e3 * k.step.step_s, 1e3 * k.step.compute_s,
                  1e3 * k.step.exposed_s);
    return std::string(buf);
  };
  const LayoutCandidate& best = candidates[size_t(chosen)];
  std::ostringstream s;
  char total[64];
  std::snprintf(total, sizeof total, "%.3g", 1e3 * best.batch_step_s);
  s << "automatic layout, performance model (" << best.machine << "):\n";
  s << "chosen " << line(best) << " = " << total << " ms per step of the batch";
  if (chosen != 0) s << " (within " << int(kLargerGroupMargin * 100) << " % of the fastest: the smaller group is preferred)";
  int shown = 0;
  for (size_t i = 0; i < candidates.size() && shown < alternatives; ++i) {
    if (int(i) == chosen) continue;
    std::snprintf(total, sizeof total, "%.3g", 1e3 * candidates[i].batch_step_s);
    s << "\nthen   " << line(candidates[i]) << " = " << total << " ms";
    ++shown;
  }
  return s.str();
}

}  // namespace fresco
