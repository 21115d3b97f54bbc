#include "src/model/text_encoder_config.hpp"

#include <algorithm>
#include <cmath>

#include "src/core/error.hpp"

namespace fresco {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::vector<std::string> t5_preset_names() { return {"t5-xxl", "t5-tiny"}; }
bool is_t5_preset(const std::string& name) { return listed(t5_preset_names(), name); }

T5Config t5_preset(const std::string& name) {
  T5Config c;
  c.name = name;
  if (name == "t5-xxl") return c;  // google/t5-v1_1-xxl
  if (name == "t5-tiny") {
    // Test size (tests/golden/make_t5_golden.py): attention narrower than the model (3 x 8 vs
    // 32) and few buckets (4 per direction, max distance 8) so 20 tokens reach every kind of
    // bucket, the clamped ones included. 512 ids hold the test tokenizer's 400 pieces, and
    // d_model 32 is flux-tiny's context width (encode, then generate).
    c.vocab = 512;
    c.d_model = 32;
    c.heads = 3;
    c.head_dim = 8;
    c.d_ff = 48;
    c.layers = 2;
    c.buckets = 8;
    c.max_distance = 8;
    return c;
  }
  throw InputError("unknown T5 preset '" + name + "' (known: " + joined(t5_preset_names()) + ")");
}

std::vector<WeightSpec> t5_weight_specs(const T5Config& c) {
  const int64_t d = c.d_model, inner = c.inner();
  std::vector<WeightSpec> s;
  s.push_back({"shared.weight", {c.vocab, d}});
  for (int n = 0; n < c.layers; ++n) {
    const std::string b = "encoder.block." + std::to_string(n) + ".layer.";
    for (const char* p : {"q", "k", "v"}) s.push_back({b + "0.SelfAttention." + p + ".weight", {inner, d}});
    s.push_back({b + "0.SelfAttention.o.weight", {d, inner}});
    if (n == 0) s.push_back({b + "0.SelfAttention.relative_attention_bias.weight", {c.buckets, c.heads}});
    s.push_back({b + "0.layer_norm.weight", {d}});
    s.push_back({b + "1.DenseReluDense.wi_0.weight", {c.d_ff, d}});
    s.push_back({b + "1.DenseReluDense.wi_1.weight", {c.d_ff, d}});
    s.push_back({b + "1.DenseReluDense.wo.weight", {d, c.d_ff}});
    s.push_back({b + "1.layer_norm.weight", {d}});
  }
  s.push_back({"encoder.final_layer_norm.weight", {d}});
  return s;
}

int t5_relative_bucket(int64_t relative, int buckets, int max_distance) {
  const int half = buckets / 2, exact = half / 2;
  const int base = relative > 0 ? half : 0;
  const int64_t n = relative < 0 ? -relative : relative;
  if (n < exact) return base + int(n);
  // In f32 and truncated, as the reference computes it: the log of an f32 tensor divided by a
  // Python float (the log of max_distance / exact in double, rounded to f32 for the op), .to(long).
  const float denominator = float(std::log(double(max_distance) / double(exact)));
  const float scaled = std::log(float(n) / float(exact)) / denominator * float(half - exact);
  return base + std::min(half - 1, exact + int(scaled));
}

std::vector<std::string> clip_preset_names() { return {"clip-l", "clip-tiny"}; }
bool is_clip_preset(const std::string& name) { return listed(clip_preset_names(), name); }

ClipTextConfig clip_preset(const std::string& name) {
  ClipTextConfig c;
  c.name = name;
  if (name == "clip-l") return c;  // openai/clip-vit-large-patch14's text model
  if (name == "clip-tiny") {
    // Test size (tests/golden/make_clip_golden.py): 1024 ids hold the test tokenizer's 914, and
    // the width 48 is flux-tiny's pooled width (encode, then generate).
    c.vocab = 1024;
    c.width = 48;
    c.heads = 4;
    c.layers = 2;
    c.mlp = 96;
    c.positions = 16;
    return c;
  }
  throw InputError("unknown CLIP preset '" + name + "' (known: " + joined(clip_preset_names()) + ")");
}

std::vector<WeightSpec> clip_weight_specs(const ClipTextConfig& c) {
  const int64_t d = c.width;
  std::vector<WeightSpec> s;
  const auto linear = [&s](const std::string& p, int64_t out, int64_t in) {
    s.push_back({p + ".weight", {out, in}});
    s.push_back({p + ".bias", {out}});
  };
  const auto norm = [&s, d](const std::string& p) {
    s.push_back({p + ".weight", {d}});
    s.push_back({p + ".bias", {d}});
  };
  s.push_back({"text_model.embeddings.token_embedding.weight", {c.vocab, d}});
  s.push_back({"text_model.embeddings.position_embedding.weight", {c.positions, d}});
  for (int n = 0; n < c.layers; ++n) {
    const std::string p = "text_model.encoder.layers." + std::to_string(n) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) linear(p + "self_attn." + proj, d, d);
    norm(p + "layer_norm1");
    linear(p + "mlp.fc1", c.mlp, d);
    linear(p + "mlp.fc2", d, c.mlp);
    norm(p + "layer_norm2");
  }
  norm("text_model.final_layer_norm");
  return s;
}

}  // namespace fresco
