#include "src/model/checkpoint_layout.hpp"

#include <algorithm>
#include <string_view>

#include "src/core/error.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/qwen_config.hpp"
#include "src/model/sdxl_config.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {
namespace {

bool is_flux_preset(const std::string& preset) {
  const auto names = flux_preset_names();
  return std::find(names.begin(), names.end(), preset) != names.end();
}

// The key without its last component ("a.b.weight" -> "a.b") and that component ("weight").
std::pair<std::string, std::string> split_leaf(const std::string& key) {
  const size_t dot = key.rfind('.');
  return {key.substr(0, dot), key.substr(dot + 1)};
}

// A whole stored tensor of `rows` rows.
SourceRows whole(const std::string& name, int64_t rows) { return {name, rows, 0, rows}; }

// `text` without `prefix` (which it starts with).
std::string after(const std::string& text, std::string_view prefix) { return text.substr(prefix.size()); }

// The block number of a module path: "double_blocks.7.img_mod.lin" -> "7".
std::string block_of(const std::string& module) {
  const size_t begin = module.find('.') + 1;
  return module.substr(begin, module.find('.', begin) - begin);
}

// Diffusers' name of a FLUX transformer module (Fresco's module name without .weight/.bias).
// The fused projections (qkv, linear1) and the final modulation are recipes of their own.
std::string diffusers_transformer_module(const std::string& module) {
  static const std::pair<const char*, const char*> top[] = {
      {"img_in", "x_embedder"},
      {"txt_in", "context_embedder"},
      {"time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"},
      {"time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"},
      {"vector_in.in_layer", "time_text_embed.text_embedder.linear_1"},
      {"vector_in.out_layer", "time_text_embed.text_embedder.linear_2"},
      {"guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"},
      {"guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"},
      {"final_layer.linear", "proj_out"}};
  for (const auto& [bfl, diffusers] : top)
    if (module == bfl) return diffusers;
  static const std::pair<const char*, const char*> in_double[] = {
      {"img_mod.lin", "norm1.linear"},           {"txt_mod.lin", "norm1_context.linear"},
      {"img_attn.norm.query_norm", "attn.norm_q"}, {"img_attn.norm.key_norm", "attn.norm_k"},
      {"txt_attn.norm.query_norm", "attn.norm_added_q"}, {"txt_attn.norm.key_norm", "attn.norm_added_k"},
      {"img_attn.proj", "attn.to_out.0"},        {"txt_attn.proj", "attn.to_add_out"},
      {"img_mlp.0", "ff.net.0.proj"},            {"img_mlp.2", "ff.net.2"},
      {"txt_mlp.0", "ff_context.net.0.proj"},    {"txt_mlp.2", "ff_context.net.2"}};
  static const std::pair<const char*, const char*> in_single[] = {
      {"modulation.lin", "norm.linear"}, {"norm.query_norm", "attn.norm_q"},
      {"norm.key_norm", "attn.norm_k"},  {"linear2", "proj_out"}};
  // "double_blocks.7.img_mod.lin" -> block "7", rest "img_mod.lin".
  const auto in_block = [&module](const std::string& prefix, std::string& block, std::string& rest) {
    if (!module.starts_with(prefix)) return false;
    const size_t dot = module.find('.', prefix.size());
    block = module.substr(prefix.size(), dot - prefix.size());
    rest = module.substr(dot + 1);
    return true;
  };
  std::string block, rest;
  if (in_block("double_blocks.", block, rest))
    for (const auto& [bfl, diffusers] : in_double)
      if (rest == bfl) return "transformer_blocks." + block + "." + diffusers;
  if (in_block("single_blocks.", block, rest))
    for (const auto& [bfl, diffusers] : in_single)
      if (rest == bfl) return "single_transformer_blocks." + block + "." + diffusers;
  FRESCO_ASSERT(false, "no diffusers name for FLUX module " + module);
  return {};
}

TensorRecipe diffusers_transformer_recipe(const FluxConfig& c, const std::string& key, int64_t rows) {
  const auto [module, leaf] = split_leaf(key);
  // RMSNorm scales are "weight" in diffusers.
  const std::string dleaf = leaf == "scale" ? "weight" : leaf;
  const int64_t d = c.hidden;
  TensorRecipe r;
  if (module.ends_with("_attn.qkv")) {
    // [3d, d]: q, k and v stacked; diffusers keeps three Linears (the text stream's "add_*_proj").
    const std::string block = "transformer_blocks." + block_of(module) + ".attn.";
    const bool txt = module.find(".txt_attn") != std::string::npos;
    for (const char* part : {"q", "k", "v"})
      r.parts.push_back(whole(block + (txt ? std::string("add_") + part + "_proj" : std::string("to_") + part) +
                                  "." + dleaf, d));
  } else if (module.starts_with("single_blocks.") && module.ends_with(".linear1")) {
    // [3d + m, d]: q, k, v and the MLP's input projection stacked.
    const std::string block = "single_transformer_blocks." + block_of(module) + ".";
    for (const char* part : {"attn.to_q", "attn.to_k", "attn.to_v"}) r.parts.push_back(whole(block + part + "." + dleaf, d));
    r.parts.push_back(whole(block + "proj_mlp." + dleaf, c.mlp_hidden()));
  } else if (module == "final_layer.adaLN_modulation.1") {
    // [2d, d]: BFL's halves are (shift, scale), diffusers' AdaLayerNormContinuous's (scale, shift).
    r.parts.push_back({"norm_out.linear." + dleaf, 2 * d, d, d});
    r.parts.push_back({"norm_out.linear." + dleaf, 2 * d, 0, d});
  } else {
    r.parts.push_back(whole(diffusers_transformer_module(module) + "." + dleaf, rows));
  }
  return r;
}

TensorRecipe diffusers_vae_recipe(const VaeConfig& c, const std::string& key, int64_t rows) {
  const auto [module, leaf] = split_leaf(key);
  std::string name = module;
  const auto replace_prefix = [&name](const std::string& from, const std::string& to) {
    if (!name.starts_with(from)) return false;
    name = to + name.substr(from.size());
    return true;
  };
  TensorRecipe r;
  constexpr std::string_view kAttention = "decoder.mid.attn_1.", kUp = "decoder.up.";
  if (module.starts_with(kAttention)) {
    // The attention's q, k, v and output are 1x1 convolutions in BFL, Linears in diffusers.
    static const std::pair<const char*, const char*> attn[] = {
        {"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"}};
    const std::string part = after(module, kAttention);
    for (const auto& [bfl, diffusers] : attn)
      if (part == bfl) name = std::string("decoder.mid_block.attentions.0.") + diffusers;
    r.unit_kernel = leaf == "weight" && part != "norm";
  } else if (replace_prefix("decoder.mid.block_1.", "decoder.mid_block.resnets.0.") ||
             replace_prefix("decoder.mid.block_2.", "decoder.mid_block.resnets.1.")) {
  } else if (module.starts_with(kUp)) {
    // BFL counts the decoder's levels from the finest (up.0 runs last); diffusers' up_blocks
    // are in the order they run. "decoder.up.L.block.B.conv1" / "decoder.up.L.upsample.conv".
    const int level = std::stoi(block_of(after(module, "decoder.")));
    const std::string rest = after(module, std::string(kUp) + block_of(after(module, "decoder.")) + ".");
    const std::string block = "decoder.up_blocks." + std::to_string(c.levels() - 1 - level) + ".";
    name = rest.starts_with("block.") ? block + "resnets." + after(rest, "block.")
                                      : block + "upsamplers.0." + after(rest, "upsample.");
  } else if (module == "decoder.norm_out") {
    name = "decoder.conv_norm_out";
  }
  constexpr std::string_view kShortcut = ".nin_shortcut";
  if (const size_t at = name.find(kShortcut); at != std::string::npos)
    name = name.substr(0, at) + ".conv_shortcut" + name.substr(at + kShortcut.size());
  r.parts.push_back(whole(name + "." + leaf, rows));
  return r;
}

}  // namespace

const char* layout_name(CheckpointLayout layout) {
  return layout == CheckpointLayout::bfl ? "original FLUX.1 (BFL)" : "diffusers";
}

std::map<std::string, TensorRecipe> checkpoint_recipes(const std::string& preset, CheckpointLayout layout,
                                                       const std::string& prefix) {
  const bool flux = is_flux_preset(preset), vae = is_vae_preset(preset);
  // Qwen-Image's weight table keeps the diffusers checkpoint's own names (docs/qwen-image.md):
  // every tensor is read whole under its key.
  if (is_qwen_preset(preset)) {
    std::map<std::string, TensorRecipe> recipes;
    for (const WeightSpec& spec : preset_weight_specs(preset))
      recipes[spec.name] = {{whole(prefix + spec.name, spec.shape.empty() ? 1 : spec.shape[0])}, false};
    return recipes;
  }
  if (layout == CheckpointLayout::diffusers && !flux && !vae)
    throw InputError("preset " + preset + " has no diffusers layout (its checkpoints keep their own names)");
  std::map<std::string, TensorRecipe> recipes;
  for (const WeightSpec& spec : preset_weight_specs(preset)) {
    const int64_t rows = spec.shape.empty() ? 1 : spec.shape[0];
    if (layout == CheckpointLayout::bfl && is_sdxl_preset(preset) && !prefix.empty())  // sgm's single file
      recipes[spec.name] = {{whole(prefix + sdxl_single_file_name(sdxl_preset(preset), spec.name), rows)}, false};
    else if (layout == CheckpointLayout::bfl) recipes[spec.name] = {{whole(prefix + spec.name, rows)}, false};
    else if (flux) recipes[spec.name] = diffusers_transformer_recipe(flux_preset(preset), spec.name, rows);
    else recipes[spec.name] = diffusers_vae_recipe(vae_preset(preset), spec.name, rows);
  }
  return recipes;
}

std::map<std::string, std::vector<RowSegment>> stored_tensor_targets(
    const std::map<std::string, TensorRecipe>& recipes) {
  std::map<std::string, std::vector<RowSegment>> targets;
  for (const auto& [key, recipe] : recipes) {
    int64_t at = 0;
    for (const SourceRows& part : recipe.parts) {
      targets[part.name].push_back({key, part.begin, at, part.rows});
      at += part.rows;
    }
  }
  return targets;
}

}  // namespace fresco
