// Performance model of one denoising step: FLOPs of the FLUX transformer (flux_step_flops,
// the count `fresco bench` reports), bytes each rank sends per step for each parallel method (docs/parallelism.md,
// docs/distrifusion.md), and a predicted step time from a compute rate and link bandwidths.
// Used by `fresco sweep` to draw "model vs measured" and to plan runs larger than the sweep,
// and by the automatic layout (rank_layouts below, src/runtime/auto_layout.hpp) to pick the
// data-parallel groups and the Ulysses x Ring degrees of a run.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// True when some block of `size` consecutive ranks, blocks aligned on multiples of `size`,
// contains ranks of two nodes of `ranks_per_node` ranks (0: one node). Groups, and Ulysses
// groups inside them, are such blocks in ParallelLayout's placement order; a group that does
// not tile the node (6 ranks per node, groups of 4) straddles a node boundary somewhere.
bool spans_nodes(int size, int ranks_per_node);

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
  double inter_node_latency = -1;  // per message between nodes; < 0: `latency`
  std::string label = "given";     // for reports: whose numbers these are
  // "CPU rank defaults, 1 thread(s): 40 GFLOP/s, links 2 GB/s in a node, 1 GB/s between
  // nodes, 50/50 us" (latency in a node / between nodes)
  std::string describe() const;
};

// The defaults of the automatic layout, per backend (a sweep measures its own; docs/cluster.md):
//   GPU rank: Fresco's own FLUX.1-dev step rate on that GPU kind and dtype where measured
//     (docs/performance.md, 1024^2): bf16 on an H200 607 TFLOP/s (122.6 ms), on an H100
//     577 TFLOP/s (129 ms); f32 on an H100 26 TFLOP/s (2.83 s: SIMT attention, f32 GEMMs),
//     taken for f32 on any GPU; another GPU kind in bf16 is assumed at 600 TFLOP/s (the label
//     says so). NVLink 283 GB/s (NCCL all-to-all bus bandwidth measured on the project's host),
//     25 GB/s between nodes (one 200 Gb/s InfiniBand link per GPU), 5 us per message;
//   CPU rank: kCpuFlopsPerThread per thread (OpenBLAS f32: `fresco bench --backend cpu
//     --model flux-small --threads 1` gave 42 and 41 GFLOP/s at 256^2 and 512^2 on the CI
//     machine, an AMD EPYC core), 2 GB/s between ranks of a node and 50 us per message
//     (shared-memory MPI, the bandwidths docs/cluster.md's sweep example fits on the same
//     machine), 1 GB/s between nodes (assumed, not measured: a 100 Gb/s NIC shared by a node's
//     8 to 16 ranks).
inline constexpr double kCpuFlopsPerThread = 40e9;
// `device`: the GPU's name as the driver reports it ("NVIDIA H100 80GB HBM3"); `bf16`: the
// activations' dtype is bf16 (else f32).
MachineModel gpu_machine(const std::string& device, bool bf16);
MachineModel cpu_machine(int threads_per_rank);

struct StepPrediction {
  double compute_s = 0;    // FLOPs of this rank's share / rate
  double comm_s = 0;       // transfer time of its bytes on the links they cross
  double exposed_s = 0;    // the part of comm_s not hidden behind compute
  double step_s = 0;       // compute_s + exposed_s
};
StepPrediction predict_step(const FluxConfig& config, const SplitConfig& split, int64_t txt_tokens,
                            int64_t img_tokens, double bytes_per_value, const MachineModel& machine);

// ---- the automatic layout ---------------------------------------------------------------
//
// Candidates: every group size G dividing the world with world / G <= images (no group starts
// idle: the rule Fresco has always had), each as every U x R = G with U <= heads for the
// sequence method (U > H would leave ranks without a head; padding below that is priced by the
// model), or as G patches. The objective is the batch's time: the groups deal the images
// round-robin, so the batch takes ceil(images / groups) rounds of one image's time on a group.
// The model assumes every image of the batch has the size given (the caller passes the
// largest), that compute scales perfectly with G (no loss of efficiency on small shards: it
// favours large groups a little), that weights are replicated on every rank, and that
// the link a collective crosses is the slowest one of any group (the groups run in lockstep).
struct LayoutSearch {
  std::string method = "sequence";  // sequence: U x R candidates; patch: G patches
  int world_size = 1;
  int ranks_per_node = 0;   // 0: one node
  int64_t images = 1;       // images of the run (a forward: 1)
  int64_t txt_tokens = 0, img_tokens = 0;  // of one image
  double bytes_per_value = 4;
  // The machine a group of G ranks runs on, or nullopt where such a group cannot run (an
  // image has fewer rows than ranks, the memory does not hold it); empty: MachineModel{}.
  std::function<std::optional<MachineModel>(int group_size)> machine_for_group;
};
struct LayoutCandidate {
  SplitConfig split;        // degrees and ranks per node
  int groups = 1;           // data-parallel groups: world / G
  int64_t rounds = 1;       // ceil(images / groups)
  std::string machine;      // MachineModel::describe() of the group's ranks
  StepPrediction step;      // one image's denoising step on one group
  double batch_step_s = 0;  // rounds x step.step_s: the batch's time per denoising step
  std::string name() const; // "Ulysses 2 x Ring 2", "4 patches", "1 rank"
};
// A larger group must be predicted this much faster than the smallest one near the best before
// it is chosen: the model is approximate, and smaller groups communicate less (groups of one
// rank: not at all, and their results are bitwise those of a one-rank run).
inline constexpr double kLargerGroupMargin = 0.05;
struct LayoutRanking {
  std::vector<LayoutCandidate> candidates;  // fastest first
  int chosen = -1;                          // index into candidates; -1: none fits
  // A few lines for the start-up report: the choice, its prediction and the runners-up.
  std::string explain(int alternatives = 3) const;
};
LayoutRanking rank_layouts(const FluxConfig& config, const LayoutSearch& search);

}  // namespace fresco
