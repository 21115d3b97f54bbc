#include "src/model/sdxl_config.hpp"

#include "src/core/error.hpp"

namespace fresco {
namespace {

void add_param(std::vector<WeightSpec>& s, const std::string& name, Shape shape) {
  s.push_back({name, std::move(shape)});
}
void add_linear(std::vector<WeightSpec>& s, const std::string& p, int64_t out, int64_t in, bool bias = true) {
  add_param(s, p + ".weight", {out, in});
  if (bias) add_param(s, p + ".bias", {out});
}
void add_conv(std::vector<WeightSpec>& s, const std::string& p, int64_t out, int64_t in, int64_t k) {
  add_param(s, p + ".weight", {out, in, k, k});
  add_param(s, p + ".bias", {out});
}
void add_norm(std::vector<WeightSpec>& s, const std::string& p, int64_t c) {
  add_param(s, p + ".weight", {c});
  add_param(s, p + ".bias", {c});
}

void add_resnet(std::vector<WeightSpec>& s, const SdxlConfig& c, const std::string& p, int64_t in, int64_t out) {
  add_norm(s, p + ".norm1", in);
  add_conv(s, p + ".conv1", out, in, 3);
  add_linear(s, p + ".time_emb_proj", out, c.time_embed_dim());
  add_norm(s, p + ".norm2", out);
  add_conv(s, p + ".conv2", out, out, 3);
  if (in != out) add_conv(s, p + ".conv_shortcut", out, in, 1);
}

void add_transformer(std::vector<WeightSpec>& s, const SdxlConfig& c, const std::string& p, int64_t C, int layers) {
  add_norm(s, p + ".norm", C);
  add_linear(s, p + ".proj_in", C, C);
  for (int k = 0; k < layers; ++k) {
    const std::string b = p + ".transformer_blocks." + std::to_string(k);
    add_norm(s, b + ".norm1", C);
    for (const char* m : {"to_q", "to_k", "to_v"}) add_linear(s, b + ".attn1." + m, C, C, false);
    add_linear(s, b + ".attn1.to_out.0", C, C);
    add_norm(s, b + ".norm2", C);
    add_linear(s, b + ".attn2.to_q", C, C, false);
    add_linear(s, b + ".attn2.to_k", C, c.context_dim, false);
    add_linear(s, b + ".attn2.to_v", C, c.context_dim, false);
    add_linear(s, b + ".attn2.to_out.0", C, C);
    add_norm(s, b + ".norm3", C);
    add_linear(s, b + ".ff.net.0.proj", 8 * C, C);
    add_linear(s, b + ".ff.net.2", C, 4 * C);
  }
  add_linear(s, p + ".proj_out", C, C);
}

}  // namespace

int SdxlConfig::up_skip_channels(int u, int j) const {
  const int level = levels() - 1 - u;
  return j == layers_per_block ? width(level > 0 ? level - 1 : 0) : width(level);
}

int SdxlConfig::up_input_channels(int u, int j) const {
  const int level = levels() - 1 - u;
  if (j > 0) return width(level);
  return u == 0 ? widths.back() : width(level + 1);
}

void SdxlConfig::validate() const {
  require_input(levels() >= 2 && int(transformer_layers.size()) == levels(),
                name + ": a U-Net needs two levels or more and one transformer depth per level");
  require_input(transformer_layers[0] == 0, name + ": level 0 has no attention (SDXL's DownBlock2D)");
  require_input(mid_layers() > 0, name + ": the mid block has attention");
  for (int l = 0; l < levels(); ++l) {
    require_input(width(l) % groups == 0, name + ": width " + std::to_string(width(l)) +
                                              " is not a multiple of the GroupNorm groups");
    require_input(layers(l) == 0 || width(l) % head_dim == 0,
                  name + ": width " + std::to_string(width(l)) + " is not a multiple of the head dim");
  }
  require_input(time_proj_dim() % 2 == 0 && size_embed_dim % 2 == 0, name + ": sinusoid widths are even");
}

std::vector<std::string> sdxl_preset_names() { return {"sdxl", "sdxl-tiny"}; }

bool is_sdxl_preset(const std::string& name) {
  for (const auto& n : sdxl_preset_names())
    if (n == name) return true;
  return false;
}

SdxlConfig sdxl_preset(const std::string& name) {
  SdxlConfig c;
  c.name = name;
  if (name == "sdxl-tiny") {
    c.widths = {16, 32};
    c.transformer_layers = {0, 1};
    c.head_dim = 8;
    c.groups = 4;
    c.context_dim = 24;
    c.pooled_dim = 20;
    c.size_embed_dim = 8;
    c.default_steps = 4;
  } else if (name != "sdxl") {
    throw InputError("unknown U-Net preset '" + name + "' (known: sdxl, sdxl-tiny)");
  }
  c.validate();
  return c;
}

std::vector<WeightSpec> sdxl_weight_specs(const SdxlConfig& c) {
  std::vector<WeightSpec> s;
  const int L = c.levels();
  add_conv(s, "conv_in", c.width(0), c.latent_channels, 3);
  add_linear(s, "time_embedding.linear_1", c.time_embed_dim(), c.time_proj_dim());
  add_linear(s, "time_embedding.linear_2", c.time_embed_dim(), c.time_embed_dim());
  add_linear(s, "add_embedding.linear_1", c.time_embed_dim(), c.add_embed_input());
  add_linear(s, "add_embedding.linear_2", c.time_embed_dim(), c.time_embed_dim());
  int channels = c.width(0);
  for (int l = 0; l < L; ++l) {
    const std::string p = "down_blocks." + std::to_string(l);
    for (int j = 0; j < c.layers_per_block; ++j) {
      add_resnet(s, c, p + ".resnets." + std::to_string(j), channels, c.width(l));
      channels = c.width(l);
      if (c.layers(l) > 0) add_transformer(s, c, p + ".attentions." + std::to_string(j), channels, c.layers(l));
    }
    if (l + 1 < L) add_conv(s, p + ".downsamplers.0.conv", channels, channels, 3);
  }
  add_resnet(s, c, "mid_block.resnets.0", channels, channels);
  add_transformer(s, c, "mid_block.attentions.0", channels, c.mid_layers());
  add_resnet(s, c, "mid_block.resnets.1", channels, channels);
  for (int u = 0; u < L; ++u) {
    const int level = L - 1 - u;
    const std::string p = "up_blocks." + std::to_string(u);
    for (int j = 0; j <= c.layers_per_block; ++j) {
      add_resnet(s, c, p + ".resnets." + std::to_string(j), c.up_input_channels(u, j) + c.up_skip_channels(u, j),
                 c.width(level));
      if (c.layers(level) > 0)
        add_transformer(s, c, p + ".attentions." + std::to_string(j), c.width(level), c.layers(level));
    }
    if (u + 1 < L) add_conv(s, p + ".upsamplers.0.conv", c.width(level), c.width(level), 3);
  }
  add_norm(s, "conv_norm_out", c.width(0));
  add_conv(s, "conv_out", c.latent_channels, c.width(0), 3);
  return s;
}

int64_t sdxl_parameter_count(const SdxlConfig& config) {
  int64_t n = 0;
  for (const auto& spec : sdxl_weight_specs(config)) n += shape_numel(spec.shape);
  return n;
}

namespace {
// The block number after `prefix` in `key` ("down_blocks.1.resnets..." -> 1) and what follows it.
std::pair<int, std::string> index_and_rest(const std::string& key, const std::string& prefix) {
  const size_t dot = key.find('.', prefix.size());
  return {std::stoi(key.substr(prefix.size(), dot - prefix.size())), key.substr(dot + 1)};
}
// A resnet's inner name: diffusers' -> sgm's ("norm1.weight" -> "in_layers.0.weight").
std::string single_file_resnet(const std::string& rest) {
  static const std::pair<const char*, const char*> names[] = {
      {"norm1.", "in_layers.0."},   {"conv1.", "in_layers.2."},  {"time_emb_proj.", "emb_layers.1."},
      {"norm2.", "out_layers.0."},  {"conv2.", "out_layers.3."}, {"conv_shortcut.", "skip_connection."}};
  for (const auto& [diffusers, sgm] : names)
    if (rest.starts_with(diffusers)) return sgm + rest.substr(std::string(diffusers).size());
  throw InputError("no single-file name for resnet tensor " + rest);
}
}  // namespace

std::string sdxl_single_file_name(const SdxlConfig& c, const std::string& key) {
  static const std::pair<const char*, const char*> fixed[] = {
      {"conv_in.", "input_blocks.0.0."},        {"time_embedding.linear_1.", "time_embed.0."},
      {"time_embedding.linear_2.", "time_embed.2."}, {"add_embedding.linear_1.", "label_emb.0.0."},
      {"add_embedding.linear_2.", "label_emb.0.2."}, {"conv_norm_out.", "out.0."},
      {"conv_out.", "out.2."},                   {"mid_block.attentions.0.", "middle_block.1."}};
  for (const auto& [diffusers, sgm] : fixed)
    if (key.starts_with(diffusers)) return sgm + key.substr(std::string(diffusers).size());
  const int per_level = c.layers_per_block + 1;  // input_blocks of a level: its resnets and the downsampler
  if (key.starts_with("mid_block.resnets.")) {
    const auto [j, rest] = index_and_rest(key, "mid_block.resnets.");
    return "middle_block." + std::to_string(2 * j) + "." + single_file_resnet(rest);
  }
  if (key.starts_with("down_blocks.")) {
    const auto [level, inner] = index_and_rest(key, "down_blocks.");
    const int first = 1 + level * per_level;
    if (inner.starts_with("downsamplers.0.conv."))
      return "input_blocks." + std::to_string(first + c.layers_per_block) + ".0.op." + inner.substr(20);
    const bool resnet = inner.starts_with("resnets.");
    const auto [j, rest] = index_and_rest(inner, resnet ? "resnets." : "attentions.");
    return "input_blocks." + std::to_string(first + j) + (resnet ? ".0." + single_file_resnet(rest) : ".1." + rest);
  }
  if (key.starts_with("up_blocks.")) {
    const auto [u, inner] = index_and_rest(key, "up_blocks.");
    const int first = u * per_level;
    if (inner.starts_with("upsamplers.0.conv.")) {
      const bool attention = c.layers(c.levels() - 1 - u) > 0;  // the upsampler follows the attention
      return "output_blocks." + std::to_string(first + c.layers_per_block) + (attention ? ".2.conv." : ".1.conv.") +
             inner.substr(18);
    }
    const bool resnet = inner.starts_with("resnets.");
    const auto [j, rest] = index_and_rest(inner, resnet ? "resnets." : "attentions.");
    return "output_blocks." + std::to_string(first + j) + (resnet ? ".0." + single_file_resnet(rest) : ".1." + rest);
  }
  throw InputError("no single-file name for U-Net tensor " + key);
}

StepFlops sdxl_step_flops(const SdxlConfig& c, int64_t txt_tokens, int64_t latent_h, int64_t latent_w) {
  // Every 4-d weight is a convolution over the pixels of its level, every 2-d weight a linear
  // over its level's tokens (the text's for attn2.to_k/to_v, one row for the embeddings): the
  // level is read off the weight's name, so this walks the same table the loader checks.
  StepFlops f;
  const double Lt = double(txt_tokens);
  auto pixels = [&](int level) { return double(latent_h >> level) * double(latent_w >> level); };
  auto level_of = [&](const std::string& name) {
    const int L = c.levels();
    const auto index_after = [&](const std::string& prefix) { return std::stoi(name.substr(prefix.size())); };
    if (name.starts_with("down_blocks.")) return index_after("down_blocks.");
    if (name.starts_with("up_blocks.")) return L - 1 - index_after("up_blocks.");
    if (name.starts_with("mid_block.")) return L - 1;
    return 0;  // conv_in, conv_out
  };
  for (const WeightSpec& w : sdxl_weight_specs(c)) {
    if (!w.name.ends_with(".weight") || w.shape.size() < 2) continue;
    const double params = double(shape_numel(w.shape));
    if (w.name.starts_with("time_embedding.") || w.name.starts_with("add_embedding.") ||
        w.name.find("time_emb_proj") != std::string::npos) {
      f.vector_linears += 2 * params;
      continue;
    }
    int level = level_of(w.name);
    double n = pixels(level);
    // A downsampler's convolution runs at its level's resolution (stride 2: a quarter of the
    // pixels); an upsampler's at the next level up (after the 2x upsampling).
    if (w.name.find("downsamplers") != std::string::npos) n = pixels(level + 1);
    if (w.name.find("upsamplers") != std::string::npos) n = pixels(level - 1);
    const bool text = w.name.find("attn2.to_k") != std::string::npos || w.name.find("attn2.to_v") != std::string::npos;
    f.token_linears += 2 * params * (text ? Lt : n);
  }
  for (int l = 0; l < c.levels(); ++l) {
    int blocks = 0;  // transformer layers at this level: down, up, and the mid block's at the last
    blocks += c.layers_per_block * c.layers(l) + (c.layers_per_block + 1) * c.layers(l);
    if (l == c.levels() - 1) blocks += c.mid_layers();
    const double n = pixels(l), C = c.width(l);
    f.attention += double(blocks) * (4 * n * n * C + 4 * n * Lt * C);
  }
  return f;
}

}  // namespace fresco
