// Performance model of one denoising step: FLOPs of the FLUX transformer (flux_step_flops,
// the count `fresco bench` reports), bytes each rank sends per step for each parallel method (docs/parallelism.md,
// docs/distrifusion.md), and a predicted step time from a compute rate and link bandwidths.
// Used by `fresco sweep` to draw "model vs measured" and to plan runs larger than the sweep.
#pragma once

#include <cstdint>
#include <string>

#include "src/model/flux_config.hpp"
#include "src/model/step_flops.hpp"  // the FLOP count (shared with `fresco bench`)

namespace fresco {

// How one image is split: sequence parallel U x R (Ulysses inside, Ring across), or patch
// parallel (DistriFusion) over G ranks; G = 1 is one rank.
struct SplitConfig {
  std::string method = "sequence";  // sequence | patch
  int ulysses = 1, ring = 1;        // sequence: G = U·R
  int patches = 1;                  // patch: G
  int ranks_per_node = 0;           // 0: the whole group on one node
  int group_size() const { return method == "patch" ? patches : ulysses * ring; }
};

// Bytes one rank sends per step (all attention layers), values of `bytes_per_value` bytes.
struct StepBytes {
  double ulysses = 0;  // all-to-alls of q, k, v and back (blocking)
  double ring = 0;     // K/V blocks passed around the ring (overlapped with attention)
  double patch = 0;    // all-gather of stale K/V rows (overlapped with the step's compute)
  double total() const { return ulysses + ring + patch; }
};
StepBytes step_bytes(const FluxConfig& config, const SplitConfig& split, int64_t txt_tokens,
                     int64_t img_tokens, double bytes_per_value);

// The machine: sustained compute rate of one rank and link bandwidths (bytes/s per rank).
struct MachineModel {
  double flops_per_second = 1e9;   // measured on one rank by the sweep, or given
  double intra_node_bw = 283e9;    // NVLink all-to-all bus bandwidth measured on the GPU host
  double inter_node_bw = 25e9;     // one 200 Gb/s InfiniBand link per GPU
  double latency = 5e-6;           // per message
};

struct StepPrediction {
  double compute_s = 0;    // FLOPs of this rank's share / rate
  double comm_s = 0;       // transfer time of its bytes on the links they cross
  double exposed_s = 0;    // the part of comm_s not hidden behind compute
  double step_s = 0;       // compute_s + exposed_s
};
StepPrediction predict_step(const FluxConfig& config, const SplitConfig& split, int64_t txt_tokens,
                            int64_t img_tokens, double bytes_per_value, const MachineModel& machine);

}  // namespace fresco
