#include "src/model/lora.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "src/core/digest.hpp"
#include "src/core/error.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/model_registry.hpp"

namespace fresco {
namespace {

// The parts of an adapter, by the suffix of their key.
enum class LoraPart { up, down, alpha };
constexpr std::pair<const char*, LoraPart> kSuffixes[] = {
    {".lora_up.weight", LoraPart::up},  {".lora_down.weight", LoraPart::down},  // kohya
    {".lora_B.weight", LoraPart::up},   {".lora_A.weight", LoraPart::down},     // PEFT / diffusers
    {".alpha", LoraPart::alpha}};
// Prefixes of the module names: diffusers' pipeline component, PEFT's wrapper, ComfyUI's
// (whose LoRAs keep the original release's names under it).
constexpr const char* kModulePrefixes[] = {"transformer.", "base_model.model.", "diffusion_model."};
constexpr const char* kKohyaPrefix = "lora_unet_";

// A stored tensor copied to the host in its own dtype.
Tensor host_copy(const CheckpointTensor& t) {
  Tensor out(t.entry.shape, t.entry.dtype);
  std::memcpy(out.raw(), t.data(), out.bytes());
  return out;
}

// Where the rows of each adapter target go: preset key (BFL names), a diffusers module name
// (FLUX transformer presets), or a kohya name, each "<module>.weight" -> row segments.
std::map<std::string, std::vector<RowSegment>> lora_targets(const std::string& preset) {
  auto targets = stored_tensor_targets(checkpoint_recipes(preset, CheckpointLayout::bfl));
  const auto names = flux_preset_names();
  if (std::find(names.begin(), names.end(), preset) != names.end())
    for (auto& [name, segments] : stored_tensor_targets(checkpoint_recipes(preset, CheckpointLayout::diffusers)))
      targets.emplace(name, segments);
  // kohya flattens the module path: double_blocks.0.img_attn.qkv -> lora_unet_double_blocks_0_img_attn_qkv.
  std::map<std::string, std::vector<RowSegment>> kohya;
  for (const auto& [name, segments] : targets) {
    if (!name.ends_with(".weight") || segments.size() != 1 || segments[0].target != name) continue;
    std::string flat = name.substr(0, name.size() - 7);
    for (char& c : flat) c = c == '.' ? '_' : c;
    kohya[kKohyaPrefix + flat + ".weight"] = segments;
  }
  targets.merge(kohya);
  return targets;
}

}  // namespace

LoraRequest parse_lora_request(const std::string& text) {
  LoraRequest r{text, 1.0};
  const size_t colon = text.rfind(':');
  if (colon != std::string::npos && text.find('/', colon) == std::string::npos) {
    const std::string scale = text.substr(colon + 1);
    char* end = nullptr;
    const double value = std::strtod(scale.c_str(), &end);
    require_input(!scale.empty() && end == scale.c_str() + scale.size() && std::isfinite(value),
                  "option --lora " + text + ": the scale after ':' must be a finite number (got '" + scale +
                      "'); the form is FILE[:SCALE]");
    r = {text.substr(0, colon), value};
  }
  require_input(!r.path.empty(), "option --lora " + text + ": no file name (the form is FILE[:SCALE])");
  return r;
}

LoraMerge::LoraMerge(const LoraOptions& options, const std::string& preset) {
  const auto targets = lora_targets(preset);
  std::map<std::string, Shape> shapes;
  for (const WeightSpec& spec : preset_weight_specs(preset)) shapes[spec.name] = spec.shape;
  for (const LoraRequest& request : options.files) {
    const SafetensorsSet file(request.path);
    LoraSummary summary{request.path, "", request.scale, 0};
    Digest digest;
    // Module -> its parts' keys; keys of no part layout are unmatched at once.
    std::map<std::string, std::map<LoraPart, std::string>> modules;
    for (const auto& [key, t] : file.tensors()) {
      require_input(t.entry.dtype != DType::i64,
                    request.path + ": " + key + " is an integer tensor (I64); LoRA tensors are floating point");
      digest.add(key).tensor(host_copy(t));
      bool known = false;
      for (const auto& [suffix, part] : kSuffixes)
        if (key.ends_with(suffix)) {
          modules[key.substr(0, key.size() - std::strlen(suffix))][part] = key;
          known = true;
          break;
        }
      if (!known) unmatched_.push_back(request.path + ": " + key + " (not a lora_up/lora_down/lora_A/lora_B/alpha key)");
    }
    summary.digest = digest.hex();
    for (const auto& [module, parts] : modules) {
      std::string name = module;
      for (const char* prefix : kModulePrefixes)
        if (name.starts_with(prefix)) name = name.substr(std::strlen(prefix));
      const auto target = targets.find(name + ".weight");
      const bool paired = parts.count(LoraPart::up) && parts.count(LoraPart::down);
      if (target == targets.end() || !paired) {
        const std::string why = !paired ? (parts.count(LoraPart::up) ? "its down/A half is missing" : "its up/B half is missing")
                                        : "no tensor of " + preset + " has this name";
        for (const auto& [part, key] : parts) unmatched_.push_back(request.path + ": " + key + " (" + why + ")");
        continue;
      }
      const Tensor up = host_copy(file.tensors().at(parts.at(LoraPart::up))).to_f32();
      const Tensor down = host_copy(file.tensors().at(parts.at(LoraPart::down))).to_f32();
      const Shape& target_shape = shapes.at(target->second[0].target);
      int64_t out_rows = 0;
      for (const RowSegment& s : target->second) out_rows = std::max(out_rows, s.source_begin + s.rows);
      const bool fits = up.rank() == 2 && down.rank() == 2 && up.dim(1) == down.dim(0) && up.dim(0) == out_rows &&
                        target_shape.size() == 2 && down.dim(1) == target_shape[1];
      require_input(fits, request.path + ": LoRA " + module + " has up " + shape_string(up.shape()) + " and down " +
                              shape_string(down.shape()) + ", which do not fit " + target->second[0].target + " " +
                              shape_string(target_shape) + " (" + std::to_string(out_rows) + " rows of it)");
      const int64_t rank = down.dim(0);
      double alpha = double(rank);  // no alpha: the update is up @ down itself
      if (parts.count(LoraPart::alpha)) {
        const Tensor a = host_copy(file.tensors().at(parts.at(LoraPart::alpha))).to_f32();
        require_input(a.numel() == 1, request.path + ": " + parts.at(LoraPart::alpha) + " has " +
                                          std::to_string(a.numel()) + " values; alpha is one number");
        alpha = a.f32()[0];
      }
      for (const RowSegment& segment : target->second)
        targets_[segment.target].push_back({up, down, float(request.scale * alpha / double(rank)), segment, module});
      ++summary.pairs;
    }
    summaries_.push_back(summary);
  }
  if (unmatched_.empty() || options.allow_unmatched) return;
  std::string msg = std::to_string(unmatched_.size()) + " LoRA key(s) match no tensor of " + preset +
                    " (--lora-unmatched warn merges the others):";
  for (size_t i = 0; i < unmatched_.size() && i < 20; ++i) msg += "\n  " + unmatched_[i];
  if (unmatched_.size() > 20) msg += "\n  ... " + std::to_string(unmatched_.size() - 20) + " more";
  throw InputError(msg);
}

Tensor LoraMerge::apply(const std::string& key, const Tensor& host) const {
  const auto it = targets_.find(key);
  if (it == targets_.end()) return host;
  FRESCO_ASSERT(host.contiguous() && host.rank() == 2, "LoraMerge::apply: " + key + " is " + host.describe());
  Tensor w = host.dtype() == DType::f32 ? host.clone() : host.to_f32();  // [out, in]
  const int64_t in = w.dim(1);
  for (const Pair& p : it->second) {
    const int64_t rank = p.down.dim(0);
    const float* up = p.up.f32();      // [out, rank]
    const float* down = p.down.f32();  // [rank, in]
#pragma omp parallel for
    for (int64_t i = 0; i < p.rows.rows; ++i) {
      // One row of up @ down in f32, then scaled onto the weight's row.
      std::vector<float> delta(size_t(in), 0.0f);
      const float* u = up + (p.rows.source_begin + i) * rank;
      for (int64_t k = 0; k < rank; ++k)
        for (int64_t j = 0; j < in; ++j) delta[size_t(j)] += u[k] * down[k * in + j];
      float* row = w.f32() + (p.rows.target_begin + i) * in;
      for (int64_t j = 0; j < in; ++j) row[j] += p.factor * delta[size_t(j)];
    }
  }
  return host.dtype() == DType::f32 ? w : w.to_dtype(host.dtype());
}

std::vector<std::string> LoraMerge::touched() const {
  std::vector<std::string> keys;
  for (const auto& [key, pairs] : targets_) keys.push_back(key);
  return keys;
}

std::string LoraMerge::identity() const {
  Digest d;
  d.add("lora");
  for (const LoraSummary& s : summaries_) d.add(s.digest).f64(s.scale);
  return d.hex();
}

std::string describe_loras(const std::vector<LoraSummary>& loras) {
  std::string out;
  for (const LoraSummary& s : loras) {
    char scale[32];
    std::snprintf(scale, sizeof scale, "%g", s.scale);
    out += (out.empty() ? "" : "; ") + s.path + " (digest " + s.digest + ", " + std::to_string(s.pairs) + " pairs) x " + scale;
  }
  return out;
}

}  // namespace fresco
