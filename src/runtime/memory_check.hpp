// The one memory check of every command that builds a denoiser (generate, forward, bench; sweep's
// runs go through generate): before any weights are made, the estimate of one rank's memory for
// each image (estimate_memory: the weights plus the activations of the rank's share) against
// what that rank may use where its denoiser lives: the host's share on the CPU backend, the
// GPU's memory on the CUDA backend. A refusal is an InputError whose advice fits the case: when
// the weights alone do not fit, more ranks per image cannot help (every rank holds all of them),
// so it names a smaller weight dtype or model; when the activations do not fit, the image's size
// (by the option or attribute that set it), more ranks per image where that would be enough,
// bf16 or a smaller stale dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mpi/plans/parallel_plan.hpp"
#include "src/model/flux_config.hpp"
#include "src/runtime/engine.hpp"

namespace fresco {

// What a rank may use, and how to say so in a refusal.
struct MemoryBudget {
  double bytes = 0;
  bool device = false;      // a GPU's memory, else the host's
  int ranks_sharing = 1;    // ranks of the node (host) or of the GPU (device) dividing it
  std::string description;  // "the 23.5 GiB per rank this node has (...)"
};

// The CUDA context and the libraries' workspaces (cuBLASLt, cuDNN) a rank holds on its GPU
// beside the weights and activations, which estimate_memory does not count. On one H100/H200
// bench's device memory in use (docs/performance.md: FLUX.1-dev bf16, 23.2 GiB at 1024², 24.5 GiB
// at 2048²) minus the weights (22.2 GiB) leaves about 1.0 and 2.3 GiB, of which
// estimate_memory's activations account for 0.5 and 2.0 GiB: 1 GiB per rank covers the rest.
inline constexpr double kDeviceReserveBytes = 1024.0 * 1024.0 * 1024.0;

// The host's share of a rank (memory_per_rank; FRESCO_MEMORY_PER_RANK where set).
MemoryBudget host_memory_budget(int ranks_on_node);
// A GPU of `total_bytes` shared by `ranks_on_device` ranks of the node: each rank's share less
// kDeviceReserveBytes (every rank has its own context and workspaces).
MemoryBudget device_memory_budget(double total_bytes, const std::string& device, int ranks_on_device);
// Ranks of a node of `local_size` ranks that run on the GPU of local rank `local_rank` when the
// node's `devices` GPUs are dealt round-robin (make_backend: local rank modulo the GPUs).
int ranks_on_device(int local_rank, int local_size, int devices);
// This rank's budget for the engine's backend: the host's on the CPU backend, the rank's GPU's
// on the CUDA backend; FRESCO_MEMORY_PER_RANK, where set, overrides either (tests).
MemoryBudget rank_memory_budget(const Engine& engine);

// One image on one rank, as the check sees it.
struct MemoryCase {
  FluxConfig config;
  EngineChoice engine;       // the backend and the compute dtype
  std::string weights_path;  // a file, or random:SEED (then --model picks the preset)
  PlanOptions plan;          // the method and the stale dtype (set_compute applied)
  int64_t image_tokens = 0, txt_tokens = 0;
  int group_size = 1;        // ranks that split the image
  bool step_cache = false;   // --cache: the cached residual and the signals
};

// Empty when the case fits the budget; else what it needs, against what, and the advice that
// fits it. `label` names the image ("image 3 (1024x1024)"), `size_source` what sets its size
// ("--width/--height", "the width/height attributes of P.h5").
std::string memory_shortfall(const MemoryCase& c, const MemoryBudget& budget, const std::string& label,
                             const std::string& size_source);

// One image of a command: its label, latent tokens and text tokens.
struct MemoryImage {
  std::string label;
  int64_t image_tokens = 0, txt_tokens = 0;
};
// The check of a command whose engine has its layout (before load_model): InputError with the
// first image that does not fit on this rank.
void check_rank_memory(const Engine& engine, const std::vector<MemoryImage>& images, const std::string& size_source);

}  // namespace fresco
