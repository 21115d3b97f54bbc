#include "src/model/perf_model.hpp"

#include <algorithm>

namespace fresco {

namespace {
int attention_layers(const FluxConfig& c) { return c.depth + c.depth_single; }
}  // namespace

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
  p.compute_s = flux_step_flops(c, txt_tokens, img_tokens).total() / G / m.flops_per_second;
  if (G == 1) {
    p.step_s = p.compute_s;
    return p;
  }
  const StepBytes bytes = step_bytes(c, s, txt_tokens, img_tokens, b);
  const int per_node = s.ranks_per_node > 0 ? s.ranks_per_node : G;
  const int layers = c.depth + c.depth_single;
  const auto bw = [&](bool crosses) { return crosses ? m.inter_node_bw : m.intra_node_bw; };
  const double attention_s = flux_step_flops(c, txt_tokens, img_tokens).attention / G / m.flops_per_second;
  if (s.method == "patch") {
    // all-gather over the group; overlapped with the whole step (asynchronous after warm-up)
    const double t = bytes.patch / bw(G > per_node) + layers * m.latency * (G - 1);
    p.comm_s = t;
    p.exposed_s = std::max(0.0, t - p.compute_s);
  } else {
    // Ulysses groups are consecutive ranks: they cross nodes only when U exceeds a node; the
    // Ring's neighbours are U ranks apart and cross nodes as soon as the group does.
    const double tu = bytes.ulysses / bw(s.ulysses > per_node) + layers * 2 * m.latency * (s.ulysses - 1);
    const double tr = bytes.ring / bw(G > per_node) + layers * m.latency * (s.ring - 1);
    p.comm_s = tu + tr;
    p.exposed_s = tu + std::max(0.0, tr - attention_s);  // the Ring hides behind attention
  }
  p.step_s = p.compute_s + p.exposed_s;
  return p;
}

}  // namespace fresco
