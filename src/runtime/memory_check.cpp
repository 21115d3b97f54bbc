#include "src/runtime/memory_check.hpp"

#include <algorithm>
#include <cstdio>

#include "src/core/error.hpp"
#include "src/core/tuning.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/qwen_config.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/auto_layout.hpp"
#include "src/runtime/validation.hpp"
#ifdef FRESCO_HAVE_CUDA
#include "cuda/device_info.hpp"
#endif

namespace fresco {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// "23.5 GiB", or MiB below one GiB (the test budgets and the small presets).
std::string size_text(double bytes) {
  char s[32];
  if (bytes >= kGiB) std::snprintf(s, sizeof s, "%.1f GiB", bytes / kGiB);
  else std::snprintf(s, sizeof s, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return s;
}

MemoryEstimate estimate(const MemoryCase& c) {
  return estimate_memory(c.config, weight_bytes_in_memory(c.config, c.engine, c.weights_path), c.engine.compute,
                         c.image_tokens, c.txt_tokens, c.group_size, c.plan.method == ParallelMethod::patch,
                         c.plan.displaced.stale_dtype, c.step_cache);
}

// The case run in another compute dtype: weights, activations and an automatic stale dtype
// follow it, as the engine's set-up would make them.
MemoryCase with_compute(MemoryCase c, DType dtype) {
  c.engine.compute = dtype;
  c.plan.set_compute(dtype);
  return c;
}

// "a, b or c".
std::string one_of(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  return s;
}

// The largest preset smaller than the case's whose whole estimate fits, for random weights
// (where --model picks the preset); empty when there is none or the weights are a file.
std::string smaller_model(const MemoryCase& c, const MemoryBudget& budget) {
  if (!random_weights_seed(c.weights_path)) return "";
  const int64_t params = flux_parameter_count(c.config);
  std::string best;
  int64_t best_params = 0;
  // A preset of the same family (Qwen-Image presets are seen through their FLUX-shaped stand-in).
  const auto family = is_qwen_preset(c.config.name) ? qwen_preset_names() : flux_preset_names();
  for (const std::string& name : family) {
    MemoryCase alt = c;
    alt.config = denoiser_config(name);
    const int64_t p = flux_parameter_count(alt.config);
    if (p < params && p > best_params && estimate(alt).total() <= budget.bytes) {
      best = "use a smaller --model (" + name + ": about " + size_text(estimate(alt).total()) + ")";
      best_params = p;
    }
  }
  return best;
}

}  // namespace

MemoryBudget host_memory_budget(int ranks_on_node) {
  MemoryBudget b;
  b.bytes = memory_per_rank(ranks_on_node);
  b.ranks_sharing = std::max(1, ranks_on_node);
  if (tuning::is_set(tuning::Switch::memory_per_rank))
    b.description = "the " + size_text(b.bytes) + " per rank that FRESCO_MEMORY_PER_RANK allows";
  else if (b.ranks_sharing > 1)
    b.description = "the " + size_text(b.bytes) + " per rank this node has (its memory or cgroup limit shared by " +
                    std::to_string(b.ranks_sharing) + " ranks)";
  else
    b.description = "the " + size_text(b.bytes) + " this node has (its memory or cgroup limit)";
  return b;
}

MemoryBudget device_memory_budget(double total_bytes, const std::string& device, int ranks) {
  MemoryBudget b;
  b.device = true;
  b.ranks_sharing = std::max(1, ranks);
  b.bytes = total_bytes / b.ranks_sharing - kDeviceReserveBytes;
  b.description = "the " + size_text(b.bytes) + " a rank may use on " + device + " (" + size_text(total_bytes) +
                  (b.ranks_sharing > 1 ? " shared by " + std::to_string(b.ranks_sharing) + " ranks" : "") +
                  ", less " + size_text(kDeviceReserveBytes) +
                  " per rank for the CUDA context and the cuBLASLt/cuDNN workspaces)";
  return b;
}

int ranks_on_device(int local_rank, int local_size, int devices) {
  FRESCO_ASSERT(devices > 0 && local_rank >= 0 && local_rank < local_size, "ranks_on_device: no such rank or GPU");
  const int d = local_rank % devices;
  return (local_size - 1 - d) / devices + 1;  // local ranks d, d + devices, ... below local_size
}

MemoryBudget rank_memory_budget(const Engine& e) {
  const bool device = e.backend->device() == Device::cuda;
#ifdef FRESCO_HAVE_CUDA
  if (device && !tuning::is_set(tuning::Switch::memory_per_rank)) {
    const auto devices = cuda::list_devices();
    FRESCO_ASSERT(!devices.empty(), "a CUDA backend without a visible GPU");
    const int n = int(devices.size());
    const cuda::DeviceInfo& d = devices[size_t(e.mpi.local_rank() % n)];
    return device_memory_budget(double(d.total_memory), "GPU " + std::to_string(d.index) + " (" + d.name + ")",
                                ranks_on_device(e.mpi.local_rank(), e.mpi.local_size(), n));
  }
#endif
  // The host's share, or FRESCO_MEMORY_PER_RANK standing for either (a GPU test of the advice).
  MemoryBudget b = host_memory_budget(e.mpi.local_size());
  b.device = device;
  return b;
}

std::string memory_shortfall(const MemoryCase& c, const MemoryBudget& budget, const std::string& label,
                             const std::string& size_source) {
  const MemoryEstimate m = estimate(c);
  if (m.total() <= budget.bytes) return "";
  const bool f32 = c.engine.compute == DType::f32;
  const bool patch = c.plan.method == ParallelMethod::patch;
  std::string why = label + " needs about " + size_text(m.total()) + " per rank (weights " + size_text(m.weights) +
                    " in " + dtype_name(c.engine.compute) + ", activations " + size_text(m.activations) +
                    "), more than " + budget.description + "; ";
  std::vector<std::string> advice;
  const std::string fewer_ranks =
      budget.device ? "run fewer ranks per GPU" : "run fewer ranks per node";
  if (m.weights > budget.bytes) {
    // Every rank holds all the weights: only smaller weights, or more memory per rank, help.
    why += "the weights alone do not fit, and every rank holds all of them, so more ranks per image cannot help: ";
    if (f32) {
      const MemoryEstimate b = estimate(with_compute(c, DType::bf16));
      if (b.weights <= budget.bytes)
        advice.push_back("use --dtype bf16 (weights " + size_text(b.weights) + ", about " + size_text(b.total()) +
                         " in all)");
    }
    if (std::string model = smaller_model(c, budget); !model.empty()) advice.push_back(model);
    if (budget.ranks_sharing > 1) advice.push_back(fewer_ranks);
    advice.push_back(budget.device ? "run on a GPU with more memory" : "run on a node with more memory");
    return why + one_of(advice);
  }
  advice.push_back("lower " + size_source);
  // More ranks shrink a rank's share of the sequence, not the weights nor the stale K/V of the
  // patch method: suggested only where even a very large group would fit.
  MemoryCase spread = c;
  spread.group_size = 1 << 30;
  if (estimate(spread).total() <= budget.bytes)
    advice.push_back(std::string("spread the image over more ranks (") + (patch ? "--patches" : "--ulysses/--ring") +
                     ")");
  if (f32) advice.push_back("use --dtype bf16");
  if (patch && dtype_size(c.plan.displaced.stale_dtype) > 1) advice.push_back("use --stale-dtype e4m3");
  if (budget.ranks_sharing > 1) advice.push_back(fewer_ranks);
  return why + one_of(advice);
}

void check_rank_memory(const Engine& e, const std::vector<MemoryImage>& images, const std::string& size_source) {
  FRESCO_ASSERT(e.layout != nullptr, "check_rank_memory before build_layout");
  const MemoryBudget budget = rank_memory_budget(e);
  MemoryCase c;
  c.config = e.config;
  c.engine = e.choice;
  c.weights_path = e.weights_path;
  c.plan = e.parallel.plan;
  c.group_size = e.layout->group_size();
  c.step_cache = e.cache.enabled();
  for (const MemoryImage& image : images) {
    c.image_tokens = image.image_tokens;
    c.txt_tokens = image.txt_tokens;
    if (std::string why = memory_shortfall(c, budget, image.label, size_source); !why.empty()) throw InputError(why);
  }
}

}  // namespace fresco
