// The automatic layout of forward and generate: when the user gives none of --ulysses, --ring
// (or --patches for --parallel patch), the performance model (src/model/perf_model.hpp,
// rank_layouts) ranks every layout that fits the world and the batch, and ParallelLayout takes
// the fastest (LayoutRequest::choose). mpi/plans may not depend on the model, so the choice is
// made here, in the runtime layer, and reaches the layout as a callback.
#pragma once

#include <cstdint>
#include <vector>

#include "mpi/comm/emulated_link.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "src/runtime/engine.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

// One image of the run: its text tokens and latent token grid (grid_h x grid_w).
struct ImageShape {
  int64_t txt_tokens = 0, grid_h = 0, grid_w = 0;
  int64_t tokens() const { return txt_tokens + grid_h * grid_w; }
};

// What the choice is made for.
struct AutoLayoutInputs {
  FluxConfig config;
  bool patch = false;               // --parallel patch: G patches instead of U x R
  std::vector<ImageShape> images;   // every image of the run (a forward: one)
  bool decode = false;              // the group decodes each image (VAE rows >= G)
  EngineChoice engine;              // the backend every group runs on
  std::string device;               // its GPU's name (engine_machine), or "CPU"
  int threads_per_rank = 1;         // CPU compute rate
  // The CPU memory check of generate (check_generate_memory): bytes of the weights and of one
  // rank's budget; weight_bytes 0: no memory limit (forward).
  double weight_bytes = 0, memory_budget = 0;
  DType stale_dtype = DType::f32;   // patch: the stale K/V buffers
  LinkEmulation link;               // --emulate-link: the model's link between nodes
};

// The chooser for LayoutRequest::choose. A layout fits when every image has a token (sequence) or a latent row
// (patch) per rank, decodes with a latent row per rank, and fits the CPU memory budget. When
// none fits, it falls back to the fixed rule and the set-up checks name what is wrong.
DegreeChooser automatic_layout(AutoLayoutInputs inputs);

// The inputs that come from the engine (its model, method, backend, device, link and threads);
// the command adds its images and, for the memory check, weight bytes and budget.
AutoLayoutInputs auto_layout_inputs(const Engine& engine, int threads_requested);

// Bytes of a run's weights in the compute dtype: the file's size in f32, else the parameters
// at the dtype's size (what check_generate_memory and the chooser's memory check count); with
// --dtype fp8 the e4m3 copy of the token linears besides, or an FP8 weights file's size alone.
double weight_bytes_in_memory(const FluxConfig& config, const EngineChoice& engine, const std::string& weights_path);

}  // namespace fresco
