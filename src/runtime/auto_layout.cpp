#include "src/runtime/auto_layout.hpp"

#include <algorithm>
#include <filesystem>

#include "src/runtime/validation.hpp"
#include "src/core/error.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/perf_model.hpp"
#include "src/model/sequence_shard.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {

namespace {

// True when every image can be cut into G shards of the method (the rules image_shards
// enforces at set-up: a token per rank for sequence, a latent grid row per rank for patch).
bool images_split(const AutoLayoutInputs& in, int G) {
  for (const ImageShape& img : in.images) {
    try {
      if (in.patch) partition_patches(img.txt_tokens, img.grid_h, img.grid_w, G);
      else partition_sequence(img.txt_tokens, img.grid_h * img.grid_w, G);
    } catch (const InputError&) {
      return false;
    }
    if (in.decode && 2 * img.grid_h < G) return false;  // the decoder's latent rows (H/8 = 2 grid rows)
  }
  return true;
}

// The machine a group of G ranks runs on, or nullopt where it cannot run.
std::optional<MachineModel> machine_for_group(const AutoLayoutInputs& in, const ImageShape& largest, int G) {
  // Any backend splits an image over any group (GPU ranks exchange through the device
  // transports), so the engine is the same for every G.
  const EngineChoice& engine = in.engine;
  if (!images_split(in, G)) return std::nullopt;
  if (engine.backend == "cpu" && in.weight_bytes > 0) {  // device memory is the GPU backend's to check
    const MemoryEstimate m = estimate_memory(in.config, in.weight_bytes, engine.compute,
                                             largest.grid_h * largest.grid_w, largest.txt_tokens, G, in.patch,
                                             in.stale_dtype);
    if (m.total() > in.memory_budget) return std::nullopt;
  }
  MachineModel machine = engine_machine(engine, in.device, in.threads_per_rank);
  if (in.link.enabled()) {  // the emulated link is what crosses (emulated) nodes
    machine.inter_node_bw = in.link.bandwidth_gb_per_s * 1e9;
    machine.inter_node_latency = in.link.latency_us * 1e-6;
    machine.label += " with the emulated link between nodes";
  }
  return machine;
}

}  // namespace

AutoLayoutInputs auto_layout_inputs(const Engine& e, int threads_requested) {
  AutoLayoutInputs in;
  in.config = e.config;
  in.patch = e.parallel.plan.method == ParallelMethod::patch;
  in.engine = e.choice;
  in.device = device_name(*e.backend, e.mpi.local_rank());
  in.link = e.parallel.layout.link;
  in.threads_per_rank = threads_per_rank(threads_requested, e.mpi.local_size());
  in.stale_dtype = e.parallel.plan.displaced.stale_dtype;
  return in;
}

DegreeChooser automatic_layout(AutoLayoutInputs inputs) {
  FRESCO_ASSERT(!inputs.images.empty(), "automatic_layout: no image");
  return [in = std::move(inputs)](const LayoutFacts& facts) {
    const ImageShape largest = *std::max_element(
        in.images.begin(), in.images.end(), [](const ImageShape& a, const ImageShape& b) { return a.tokens() < b.tokens(); });
    LayoutSearch search;
    search.method = in.patch ? "patch" : "sequence";
    search.world_size = facts.world_size;
    search.ranks_per_node = facts.ranks_per_node;
    search.images = facts.work_items;
    search.txt_tokens = largest.txt_tokens;
    search.img_tokens = largest.grid_h * largest.grid_w;
    search.bytes_per_value = double(dtype_size(in.engine.compute));
    search.machine_for_group = [&](int G) { return machine_for_group(in, largest, G); };
    const LayoutRanking ranking = rank_layouts(in.config, search);
    if (ranking.chosen < 0) {
      // Nothing fits: the fixed rule, whose layout the set-up checks then refuse by name.
      LayoutDegrees d = resolve_degrees(facts.world_size, facts.ranks_per_node, LayoutRequest{},
                                        facts.work_items);
      d.rationale += "\n(the performance model found no layout that fits: see the error below, if any)";
      return d;
    }
    const LayoutCandidate& chosen = ranking.candidates[size_t(ranking.chosen)];
    LayoutDegrees d;
    // The patch method's group is ParallelLayout's Ulysses axis (parallel_choice's convention).
    d.ulysses = in.patch ? chosen.split.patches : chosen.split.ulysses;
    d.ring = in.patch ? 1 : chosen.split.ring;
    d.rationale = ranking.explain();
    return d;
  };
}

double weight_bytes_in_memory(const FluxConfig& config, const EngineChoice& engine, const std::string& weights_path) {
  double bytes = double(flux_parameter_count(config)) * double(dtype_size(engine.compute));
  std::error_code ec;
  const auto size = std::filesystem::file_size(weights_path, ec);
  // An FP8 weights file: with --dtype fp8 held as stored (its token linears in e4m3 only), with
  // another dtype dequantized into it (the bytes above).
  if (!ec && is_fp8_weights_file(weights_path)) return engine.fp8 ? double(size) : bytes;
  if (!ec) bytes = engine.compute == DType::f32 ? double(size) : std::min(double(size), bytes);
  // --dtype fp8 keeps the token linears' weights a second time, in e4m3 (one byte each).
  if (engine.fp8) bytes += double(flux_token_linear_weight_count(config));
  return bytes;
}

}  // namespace fresco
