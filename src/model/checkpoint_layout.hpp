// Where each tensor of a preset is found in a checkpoint, for the two layouts Fresco reads:
// the original FLUX.1 release's ("BFL": Fresco's own names, possibly under a key prefix) and
// diffusers' (FluxTransformer2DModel and AutoencoderKL state dicts: renamed, with the fused
// projections split). The renaming is documented in docs/checkpoints.md; LoRA targets
// (src/model/lora.hpp) go through the same recipes backwards.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace fresco {

enum class CheckpointLayout { bfl, diffusers };
const char* layout_name(CheckpointLayout layout);

// Rows [begin, begin + rows) of dimension 0 of a stored tensor that has `source_rows` rows.
struct SourceRows {
  std::string name;
  int64_t source_rows = 0;
  int64_t begin = 0, rows = 0;
};

// A preset tensor as the concatenation, along dimension 0, of stored rows; `unit_kernel` adds
// two trailing dimensions of 1 (a Linear [out, in] stored for a 1x1 convolution [out, in, 1, 1]).
struct TensorRecipe {
  std::vector<SourceRows> parts;
  bool unit_kernel = false;
};

// Every tensor of `preset` (any preset: transformer, autoencoder, text encoder) by its Fresco key.
// BFL: the key itself under `prefix`, whole; for an SDXL U-Net preset with a prefix (the original
// single file's "model.diffusion_model."), its sgm name (sdxl_single_file_name), whose diffusers
// names are Fresco's own and need no prefix. Diffusers: the FLUX transformer and autoencoder
// presets' renaming (other presets have no diffusers layout: InputError). Qwen-Image presets, in
// either layout: the key itself under `prefix` (their table has the diffusers names).
std::map<std::string, TensorRecipe> checkpoint_recipes(const std::string& preset, CheckpointLayout layout,
                                                       const std::string& prefix = "");

// Where rows of a stored tensor land: rows [source_begin, source_begin + rows) of it are rows
// [target_begin, target_begin + rows) of preset tensor `target`.
struct RowSegment {
  std::string target;
  int64_t source_begin = 0, target_begin = 0, rows = 0;
};
// The recipes read backwards: stored name -> where its rows go.
std::map<std::string, std::vector<RowSegment>> stored_tensor_targets(
    const std::map<std::string, TensorRecipe>& recipes);

}  // namespace fresco
