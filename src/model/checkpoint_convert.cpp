#include "src/model/checkpoint_convert.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "io/safetensors_set.hpp"
#include "io/weights_file.hpp"
#include "src/core/error.hpp"
#include "src/model/checkpoint_layout.hpp"
#include "src/model/fp8_weights.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/qwen_config.hpp"
#include "src/model/sdxl_config.hpp"
#include "src/model/text_encoder_config.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {
namespace {

// Key prefixes of single-file checkpoints that bundle the transformer with other models.
constexpr const char* kTransformerPrefixes[] = {"model.diffusion_model."};

// Names only diffusers' FLUX transformer and autoencoder have.
constexpr const char* kDiffusersMarkers[] = {"transformer_blocks.", "single_transformer_blocks.", "x_embedder.",
                                             "decoder.up_blocks.", "decoder.mid_block."};

// The per-tensor scales of ComfyUI's scaled FP8 checkpoints and their markers: read with the
// weight they scale (the input scales are for FP8 matmuls, which a widened weight does not use).
bool is_scale_metadata(const std::string& name) {
  if (name == "scaled_fp8") return true;
  for (const char* suffix : {".scale_weight", ".weight_scale", ".scale_input", ".input_scale", ".comfy_quant"})
    if (name.ends_with(suffix)) return true;
  return false;
}

// Why a tensor of a text encoder's HF checkpoint that is not one of the preset's weights is left
// out, or nothing: CLIP's position ids (a buffer older transformers saved: int64 [1, 77],
// 0..76, which the encoder computes) and T5's encoder.embed_tokens.weight, the same parameter
// as shared.weight in T5EncoderModel, stored twice by some savers (taken as the tied copy when
// the shapes agree; of another shape it stays an unexpected tensor).
std::optional<std::string> text_encoder_extra(const std::string& preset, const std::string& name,
                                              const SafetensorsSet& set) {
  if (is_clip_preset(preset) && name == "text_model.embeddings.position_ids")
    return std::string("a buffer of position ids, not a weight");
  if (is_t5_preset(preset) && name == "encoder.embed_tokens.weight") {
    const auto shared = set.tensors().find("shared.weight");
    if (shared != set.tensors().end() && shared->second.entry.shape == set.tensors().at(name).entry.shape)
      return std::string("tied to shared.weight");
  }
  return std::nullopt;
}

CheckpointLayout detect_layout(const SafetensorsSet& set) {
  for (const auto& [name, t] : set.tensors())
    for (const char* marker : kDiffusersMarkers)
      if (name.starts_with(marker)) return CheckpointLayout::diffusers;
  return CheckpointLayout::bfl;
}

// The scale of an F8_E4M3 weight `name` (NAME.weight -> NAME.scale_weight or NAME.weight_scale),
// or nothing. A scale of more than one value (per channel, per block) is refused.
std::optional<float> e4m3_scale(const SafetensorsSet& set, const std::string& name) {
  if (!name.ends_with(".weight")) return std::nullopt;
  const std::string stem = name.substr(0, name.size() - 7);
  for (const char* suffix : {".scale_weight", ".weight_scale"}) {
    const auto it = set.tensors().find(stem + suffix);
    if (it == set.tensors().end()) continue;
    const SafetensorsEntry& e = it->second.entry;
    require_input(shape_numel(e.shape) == 1 && e.dtype != DType::e4m3,
                  set.path() + ": " + it->first + " has shape " + shape_string(e.shape) + " (" + dtype_name(e.dtype) +
                      "); Fresco applies one float scale per tensor, not per-channel or per-block scales");
    Tensor value({1}, e.dtype);
    std::memcpy(value.raw(), it->second.data(), dtype_size(e.dtype));
    return value.to_f32().f32()[0];
  }
  return std::nullopt;
}

// What the checkpoint holds of a preset tensor: nothing when a part is missing; the parts'
// concatenated shape and common dtype (F8_E4M3 reads as the bf16 it is widened to); a part of
// unexpected rows gives that part's own shape, so that the mismatch is reported.
std::optional<StoredTensorInfo> resolve(const TensorRecipe& recipe, const SafetensorsSet& set) {
  StoredTensorInfo info;
  int64_t rows = 0;
  Shape trailing;
  std::set<DType> dtypes;
  for (size_t i = 0; i < recipe.parts.size(); ++i) {
    const SourceRows& part = recipe.parts[i];
    const auto it = set.tensors().find(part.name);
    if (it == set.tensors().end()) return std::nullopt;
    const Shape& shape = it->second.entry.shape;
    const Shape tail = shape.empty() ? Shape{} : Shape(shape.begin() + 1, shape.end());
    if (shape.empty() || shape[0] != part.source_rows || (i > 0 && tail != trailing))
      return StoredTensorInfo{shape, it->second.entry.dtype, std::string(dtype_name(it->second.entry.dtype)) +
                                                                 " (stored as " + part.name + ")"};
    trailing = tail;
    rows += part.rows;
    dtypes.insert(it->second.entry.dtype);
  }
  info.shape = {rows};
  info.shape.insert(info.shape.end(), trailing.begin(), trailing.end());
  if (recipe.unit_kernel) info.shape.insert(info.shape.end(), {1, 1});
  if (dtypes.size() > 1) {
    info.stored_type = "parts of different dtypes";
    return info;
  }
  const DType dtype = *dtypes.begin();
  if (dtype == DType::i64) {  // not a weight: the table's dtype check names it
    info.stored_type = "int64";
    return info;
  }
  info.dtype = dtype == DType::e4m3 ? DType::bf16 : dtype;
  info.stored_type = dtype == DType::e4m3 ? "F8_E4M3 (widened to bf16)" : dtype_name(dtype);
  return info;
}

// The checkpoint seen as one preset.
struct PresetView {
  std::map<std::string, TensorRecipe> recipes;
  TensorTable table;      // preset keys found, and the stored tensors used by none under their own names
  int64_t left_out = 0;   // stored tensors outside the prefix, an autoencoder's encoder, scale metadata
  int64_t known = 0;      // stored tensors that are (parts of) the preset's tensors
  std::vector<std::string> dropped;  // text_encoder_extra's, "NAME (why)"
};

PresetView view_as(const std::string& preset, const SafetensorsSet& set, CheckpointLayout layout,
                   const std::string& prefix) {
  PresetView view;
  view.recipes = checkpoint_recipes(preset, layout, prefix);
  std::set<std::string> used;
  for (const auto& [key, recipe] : view.recipes) {
    if (const auto info = resolve(recipe, set)) view.table[key] = *info;
    for (const SourceRows& part : recipe.parts) used.insert(part.name);
  }
  const bool vae = is_vae_preset(preset);
  for (const auto& [name, t] : set.tensors()) {
    if (used.count(name)) {
      ++view.known;
      continue;
    }
    if (const auto why = text_encoder_extra(preset, name, set)) {
      view.dropped.push_back(name + " (" + *why + ")");
      continue;
    }
    const std::string key = name.starts_with(prefix) ? name.substr(prefix.size()) : name;
    const bool outside = !name.starts_with(prefix) || is_scale_metadata(name) ||
                         (vae && (key.starts_with("encoder.") || key.starts_with("quant_conv.")));
    if (outside) ++view.left_out;
    else view.table[name] = {t.entry.shape, t.entry.dtype, dtype_name(t.entry.dtype)};
  }
  return view;
}

// Writes preset tensor `spec` from its recipe: the stored bytes unchanged when it is one whole
// tensor, else its parts' rows copied in order; F8_E4M3 parts widened (and scaled) to f32 and
// the result stored as bf16 (exact: every E4M3 value is a bf16 value; a scaled one is rounded once).
// With `fp8` the tensor goes through it (an FP8 file: the token linears quantized).
void write_tensor(WeightsWriter& w, const WeightSpec& spec, const TensorRecipe& recipe, const SafetensorsSet& set,
                  ConvertedCheckpoint& done, Fp8WeightsWriter* fp8) {
  std::vector<const CheckpointTensor*> parts;
  for (const SourceRows& part : recipe.parts) parts.push_back(&set.tensors().at(part.name));
  const DType dtype = parts[0]->entry.dtype;
  const SourceRows& first = recipe.parts[0];
  if (dtype != DType::e4m3 && parts.size() == 1 && first.begin == 0 && first.rows == first.source_rows) {
    if (!fp8) {
      w.tensor_bytes(spec.name, dtype, spec.shape, parts[0]->data());
      return;
    }
    Tensor whole(spec.shape, dtype);
    std::memcpy(whole.raw(), parts[0]->data(), whole.bytes());
    fp8->tensor(spec.name, whole);
    return;
  }
  const bool widen = dtype == DType::e4m3;
  Tensor out(spec.shape, widen ? DType::f32 : dtype);  // the preset's shape, e.g. qkv [3d, d]
  const int64_t row_numel = out.numel() / spec.shape[0];
  int64_t at = 0;
  bool scaled = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const SourceRows& part = recipe.parts[i];
    const auto* src = static_cast<const unsigned char*>(parts[i]->data()) + part.begin * row_numel * dtype_size(dtype);
    if (!widen) {
      std::memcpy(static_cast<unsigned char*>(out.raw()) + at * row_numel * dtype_size(dtype), src,
                  part.rows * row_numel * dtype_size(dtype));
    } else {
      Tensor stored({part.rows * row_numel}, DType::e4m3);  // [rows * row_numel]
      std::memcpy(stored.raw(), src, stored.bytes());
      const Tensor values = stored.to_f32();
      const std::optional<float> scale = e4m3_scale(set, part.name);
      scaled |= scale.has_value();
      float* dst = out.f32() + at * row_numel;
      for (int64_t j = 0; j < values.numel(); ++j) dst[j] = scale ? values.f32()[j] * *scale : values.f32()[j];
    }
    at += part.rows;
  }
  if (widen) {
    ++done.widened_e4m3;
    done.scaled_e4m3 += scaled;
  }
  const Tensor stored = widen ? out.to_dtype(DType::bf16) : out;
  if (fp8) fp8->tensor(spec.name, stored);
  else w.tensor(spec.name, stored);
}

}  // namespace

ConvertedCheckpoint convert_checkpoint(const std::string& in, const std::string& out, const std::string& model,
                                       bool fp8) {
  if (model != "auto") preset_weight_specs(model);  // rejects an unknown preset
  const SafetensorsSet set(in);
  const CheckpointLayout layout = detect_layout(set);
  std::string prefix;
  if (layout == CheckpointLayout::bfl)
    for (const std::string p : kTransformerPrefixes)
      for (const auto& [name, t] : set.tensors())
        if (name.starts_with(p)) prefix = p;
  // Every preset (of the layout) against the checkpoint: the one that matches, else the closest.
  std::map<std::string, PresetView> views;
  std::map<std::string, std::vector<WeightProblem>> problems;
  std::string match, closest;
  for (const auto& name : all_preset_names()) {
    const bool has_layout = layout == CheckpointLayout::bfl || is_vae_preset(name) || is_qwen_preset(name) ||
                            std::ranges::count(flux_preset_names(), name) > 0;
    if (!has_layout && name != model) continue;
    views[name] = view_as(name, set, layout, prefix);
    problems[name] = validate_weight_table(name, preset_weight_specs(name), views[name].table);
    if (problems[name].empty() && match.empty()) match = name;
    if (closest.empty() || problems[name].size() < problems[closest].size()) closest = name;
  }
  const std::string preset = model == "auto" ? match : model;
  if (preset.empty() || !problems[preset].empty()) {
    const std::string against = preset.empty() ? closest : preset;
    const auto& found = problems[against];
    const bool no_key_known = views[against].known == 0;
    std::string note;
    if (!match.empty())
      note = "it looks like " + match + ", which it matches exactly (convert with --model " + match +
             " or --model auto)";
    else if (no_key_known && !set.tensors().empty())
      note = "none of its tensor names is a key of a preset in the " + std::string(layout_name(layout)) +
             " layout (it has " + set.tensors().begin()->first +
             ", ...): Fresco reads the names of the original FLUX.1 release (double_blocks.0.img_attn.qkv.weight) "
             "and diffusers' (transformer_blocks.0.attn.to_q.weight)";
    else if (preset.empty())
      note = "no preset matches it; " + closest + " is the closest (--model names another to compare with)";
    else if (closest != preset)
      note = closest + " is closer (" + std::to_string(problems[closest].size()) + " problems)";
    if (layout == CheckpointLayout::diffusers) note += (note.empty() ? "" : "; ") + std::string("read as diffusers' layout, by the preset's names");
    throw InputError(describe_weight_problems(in, against, found, note));
  }
  const PresetView& view = views[preset];
  // The U-Net's diffusers names are Fresco's own (read like the original FLUX.1 names, whole); its
  // single file's are sgm's under a prefix (docs/sdxl.md).
  const std::string read_as = !is_sdxl_preset(preset) ? layout_name(layout)
                              : prefix.empty()        ? "diffusers U-Net"
                                                      : "original SDXL single file (sgm names)";
  ConvertedCheckpoint done{preset, read_as, prefix, int64_t(set.shard_count()), view.left_out, view.dropped};
  require_input(!fp8 || has_token_linears(preset),
                in + " holds " + preset + " weights: --dtype fp8 is for FLUX transformer checkpoints");
  write_weights_file(out, preset, [&](WeightsWriter& w) {
    w.attribute("source", in);
    std::unique_ptr<Fp8WeightsWriter> quantizer = fp8 ? std::make_unique<Fp8WeightsWriter>(w, flux_preset(preset)) : nullptr;
    for (const WeightSpec& spec : preset_weight_specs(preset))
      write_tensor(w, spec, view.recipes.at(spec.name), set, done, quantizer.get());
    if (quantizer) done.quantized = quantizer->quantized();
  });
  return done;
}

}  // namespace fresco
