#include "src/model/qwen_config.hpp"

#include <numeric>

#include "src/core/error.hpp"

namespace fresco {
namespace {

QwenConfig make_qwen_image() {
  QwenConfig c;
  c.name = "qwen-image";
  return c;
}

// Test size (~0.4 M parameters): 2 blocks, 64 wide, still 64-channel tokens; the golden files
// of tests/golden/make_qwen_golden.py use exactly these numbers.
QwenConfig make_qwen_tiny() {
  QwenConfig c;
  c.name = "qwen-tiny";
  c.hidden = 64;
  c.heads = 2;  // D = 32
  c.layers = 2;
  c.context_in_dim = 48;
  c.axes_dim = {8, 12, 12};
  c.default_steps = 4;
  return c;
}

}  // namespace

void QwenConfig::validate() const {
  require_input(hidden > 0 && heads > 0 && hidden % heads == 0,
                name + ": hidden size must be a positive multiple of the head count");
  require_input(axes_dim[0] + axes_dim[1] + axes_dim[2] == head_dim(), name + ": RoPE axes dims must sum to the head dim");
  for (int a : axes_dim) require_input(a > 0 && a % 2 == 0, name + ": RoPE axis dims must be even");
  require_input(in_channels == 4 * out_channels, name + ": in_channels must be 4 x out_channels (2x2 patches)");
}

std::vector<std::string> qwen_preset_names() { return {"qwen-image", "qwen-tiny"}; }

bool is_qwen_preset(const std::string& name) {
  for (const auto& n : qwen_preset_names())
    if (n == name) return true;
  return false;
}

QwenConfig qwen_preset(const std::string& name) {
  QwenConfig c;
  if (name == "qwen-image") c = make_qwen_image();
  else if (name == "qwen-tiny") c = make_qwen_tiny();
  else {
    std::string known;
    for (const auto& n : qwen_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError("unknown Qwen-Image preset '" + name + "' (known: " + known + ")");
  }
  c.validate();
  return c;
}

std::vector<WeightSpec> qwen_weight_specs(const QwenConfig& c) {
  const int64_t d = c.hidden, D = c.head_dim(), m = c.mlp_hidden();
  std::vector<WeightSpec> s;
  auto linear = [&s](const std::string& prefix, int64_t out, int64_t in) {
    s.push_back({prefix + ".weight", {out, in}});
    s.push_back({prefix + ".bias", {out}});
  };
  linear("img_in", d, c.in_channels);
  s.push_back({"txt_norm.weight", {c.context_in_dim}});
  linear("txt_in", d, c.context_in_dim);
  linear("time_text_embed.timestep_embedder.linear_1", d, 256);
  linear("time_text_embed.timestep_embedder.linear_2", d, d);
  for (int i = 0; i < c.layers; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i) + ".";
    linear(b + "img_mod.1", 6 * d, d);
    linear(b + "txt_mod.1", 6 * d, d);
    for (const char* proj : {"to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"})
      linear(b + "attn." + proj, d, d);
    for (const char* norm : {"norm_q", "norm_k", "norm_added_q", "norm_added_k"})
      s.push_back({b + "attn." + norm + ".weight", {D}});
    linear(b + "attn.to_out.0", d, d);
    linear(b + "attn.to_add_out", d, d);
    for (const char* stream : {"img_mlp", "txt_mlp"}) {
      linear(b + stream + ".net.0.proj", m, d);
      linear(b + stream + ".net.2", d, m);
    }
  }
  linear("norm_out.linear", 2 * d, d);
  linear("proj_out", c.out_token_channels(), d);
  return s;
}

int64_t qwen_parameter_count(const QwenConfig& config) {
  int64_t n = 0;
  for (const auto& s : qwen_weight_specs(config)) n += shape_numel(s.shape);
  return n;
}

StepFlops qwen_step_flops(const QwenConfig& c, int64_t txt_tokens, int64_t img_tokens) {
  const double d = c.hidden, m = c.mlp_hidden(), L = double(txt_tokens + img_tokens);
  const double Li = double(img_tokens), Lt = double(txt_tokens), N = c.layers;
  StepFlops f;
  // Per row of either stream: q, k, v and the output projection 4 d^2, the MLP 2 m d.
  f.token_linears = N * 2 * (4 * d * d + 2 * m * d) * L + 2 * Li * c.in_channels * d +
                    2 * Lt * c.context_in_dim * d + 2 * Li * d * c.out_token_channels();
  f.attention = N * 4 * L * L * d;
  // The time embedder, two 6d modulations a block, norm_out's 2d.
  f.vector_linears = 2 * (256 * d + d * d) + N * 2 * (2 * 6 * d * d) + 2 * (2 * d * d);
  return f;
}

FluxConfig qwen_cost_analog(const QwenConfig& q) {
  FluxConfig f;
  f.name = q.name;
  f.hidden = q.hidden;
  f.heads = q.heads;
  f.depth = q.layers;
  f.depth_single = 0;
  f.mlp_ratio = q.mlp_ratio;
  f.in_channels = q.in_channels;
  f.context_in_dim = q.context_in_dim;
  f.vec_in_dim = 0;  // no pooled vector
  f.axes_dim = q.axes_dim;
  f.theta = q.theta;
  f.guidance_embed = false;
  f.time_shift = true;
  f.default_steps = q.default_steps;
  f.default_guidance = 0.0;  // no guidance embedding (true CFG is not run yet)
  return f;
}

}  // namespace fresco
