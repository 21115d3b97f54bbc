#include "src/model/sdxl_unet.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "src/core/error.hpp"
#include "src/model/token_ids.hpp"

namespace fresco {
namespace {

constexpr float kResnetEps = 1e-5f;       // norm_eps: resnets and conv_norm_out
constexpr float kTransformerEps = 1e-6f;  // Transformer2DModel's GroupNorm
constexpr float kLayerNormEps = 1e-5f;    // the transformer blocks' LayerNorms

// emb(v, n) of docs/sdxl.md into out[0 .. n): cos then sin of v 10000^(-k / (n/2)).
void host_sinusoid(double v, int n, float* out) {
  const int half = n / 2;
  for (int k = 0; k < half; ++k) {
    const double f = std::exp(-std::log(10000.0) * double(k) / double(half));
    out[k] = float(std::cos(v * f));
    out[half + k] = float(std::sin(v * f));
  }
}

}  // namespace

DenoiserSpec sdxl_denoiser_spec(const SdxlConfig& c) {
  DenoiserSpec s;
  s.name = c.name;
  s.family = "sdxl";
  int layers = c.mid_layers(), heads = 0;
  for (int l = 0; l < c.levels(); ++l) {
    layers += (2 * c.layers_per_block + 1) * c.layers(l);
    if (c.layers(l) > 0) heads = std::max(heads, c.heads(l));
  }
  // The self-attentions of a step; their heads differ by level (the widest level's here) and
  // each runs over its level's pixels, not one joint sequence: the plans do not run the U-Net.
  s.attention = {layers, heads, c.head_dim};
  s.blocks = layers;
  s.token_channels = c.latent_channels;
  s.latent_channels = c.latent_channels;
  s.latent_patch = 1;
  s.default_steps = c.default_steps;
  s.default_guidance = c.default_guidance;
  s.step_flops = [c](int64_t txt, int64_t img) {
    // img tokens: a square latent of that many pixels (the FLOPs depend on h w only through
    // n = h w, and on the levels' n_l = n / 4^l).
    const auto side = int64_t(std::llround(std::sqrt(double(img))));
    return sdxl_step_flops(c, txt, side, side);
  };
  // s.timesteps stays empty: the runtime's flow-matching loop (StepRunner) does not run the U-Net;
  // its samplers are sdxl_sampler.hpp's, driven by generate_sdxl.cpp (docs/sdxl.md).
  return s;
}

SdxlUnet::SdxlUnet(SdxlConfig config, ModelWeights weights, Backend& backend,
                   std::unique_ptr<AttentionStrategy> attention, DType compute)
    : config_(std::move(config)),
      spec_(sdxl_denoiser_spec(config_)),
      weights_(std::move(weights)),
      backend_(backend),
      attention_(std::move(attention)),
      compute_(compute) {
  require_input(compute == DType::f32 || compute == DType::bf16,
                std::string("the SDXL U-Net computes in f32 or bf16, not ") + dtype_name(compute));
  const DType stored = w("conv_in.bias").dtype();
  bias_dtype_ = stored == DType::bf16 ? DType::bf16 : DType::f32;
  // The constant part of every resnet's conv1 bias, summed once on the host in f32.
  for (const WeightSpec& spec : sdxl_weight_specs(config_)) {
    if (!spec.name.ends_with(".time_emb_proj.bias")) continue;
    const std::string resnet = spec.name.substr(0, spec.name.size() - std::string(".time_emb_proj.bias").size());
    const Tensor a = backend_.download(w(resnet + ".conv1.bias")).to_f32();
    const Tensor b = backend_.download(w(spec.name)).to_f32();
    Tensor sum(a.shape());
    for (int64_t i = 0; i < a.numel(); ++i) sum.f32()[i] = a.f32()[i] + b.f32()[i];
    static_bias_[resnet] = backend_.upload(bias_dtype_ == DType::f32 ? sum : sum.to_dtype(bias_dtype_));
  }
  int widest = 0;
  for (int width : config_.widths) widest = std::max(widest, width);
  ones_ = constant_vector(backend_, widest, compute_, 1.0f);
  backend_.synchronize();
}

SdxlUnet::~SdxlUnet() = default;

Tensor SdxlUnet::view(const Tensor& buffer, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  FRESCO_ASSERT(n <= buffer.numel(), "U-Net scratch: " + shape_string(shape) + " exceeds " + buffer.describe());
  return buffer.rows(0, n).reshape(shape);
}

void SdxlUnet::lay_out(int64_t h, int64_t w, int64_t txt_tokens) {
  if (h == h_ && w == w_ && txt_tokens == txt_) return;
  const SdxlConfig& c = config_;
  const int L = c.levels();
  const int64_t n0 = h * w;
  const auto pixels = [&](int level) { return (h >> level) * (w >> level); };
  // The largest activation of each scratch role over the levels.
  int64_t most = 0, most_concat = 0, most_ff = 0, widest = 0;
  for (int l = 0; l < L; ++l) {
    most = std::max(most, int64_t(c.width(l)) * pixels(l));
    if (l > 0) most = std::max(most, int64_t(c.width(l)) * pixels(l - 1));  // upsampled input
    if (c.layers(l) > 0 || l == L - 1) most_ff = std::max(most_ff, 8 * int64_t(c.width(l)) * pixels(l));
    widest = std::max(widest, int64_t(c.width(l)));
  }
  for (int u = 0; u < L; ++u)
    for (int j = 0; j <= c.layers_per_block; ++j)
      most_concat = std::max(most_concat, int64_t(c.up_input_channels(u, j) + c.up_skip_channels(u, j)) *
                                              pixels(L - 1 - u));
  most = std::max({most, most_concat, int64_t(c.latent_channels) * n0});
  const int64_t E = c.time_embed_dim();
  auto alloc = [&](int64_t n, std::optional<DType> dtype = std::nullopt) {
    return backend_.alloc({n}, dtype.value_or(compute_));
  };
  tokens_c_ = backend_.alloc({n0, c.latent_channels}, compute_);
  eps_tokens_ = backend_.alloc({n0, c.latent_channels}, compute_);
  latent_ = backend_.alloc({c.latent_channels, h, w}, compute_);
  for (Tensor& e : eps_) e = backend_.alloc({c.latent_channels, h, w}, compute_);
  skips_.clear();
  skips_.push_back(backend_.alloc({c.width(0), h, w}, compute_));
  for (int l = 0; l < L; ++l) {
    for (int j = 0; j < c.layers_per_block; ++j)
      skips_.push_back(backend_.alloc({c.width(l), h >> l, w >> l}, compute_));
    if (l + 1 < L) skips_.push_back(backend_.alloc({c.width(l), h >> (l + 1), w >> (l + 1)}, compute_));
  }
  for (Tensor& p : path_) p = alloc(most);
  for (Tensor* t : {&concat_, &upsampled_, &normed_, &hidden_, &tok_a_, &tok_z_, &q_, &k_, &v_, &o_}) *t = alloc(most);
  ff_ = alloc(std::max(most_ff, most));
  ctx_k_ = alloc(txt_tokens * widest);
  ctx_v_ = alloc(txt_tokens * widest);
  time_proj_ = alloc(c.time_proj_dim());
  for (Tensor* t : {&e_time_, &e_hidden_, &e_, &e_silu_}) *t = backend_.alloc({1, E}, compute_);
  conv_bias_ = alloc(widest, bias_dtype_);
  sums_ = backend_.alloc({c.groups, 2}, DType::f64);
  h_ = h;
  w_ = w;
  txt_ = txt_tokens;
  ++epoch_;
}

SdxlUnet::Branch SdxlUnet::embed_branch(const Tensor& txt, const Tensor& pooled, const Tensor& size_cond) {
  const SdxlConfig& c = config_;
  require_input(txt.rank() == 2 && txt.dim(1) == c.context_dim,
                c.name + ": the text hidden states are [tokens, " + std::to_string(c.context_dim) + "], got " +
                    shape_string(txt.shape()));
  require_input(pooled.numel() == c.pooled_dim, c.name + ": the pooled text embedding has " +
                                                    std::to_string(c.pooled_dim) + " values, got " +
                                                    std::to_string(pooled.numel()));
  require_input(size_cond.numel() == 6, c.name + ": the size conditioning has 6 numbers (original h, w, crop "
                                                 "top, left, target h, w), got " + std::to_string(size_cond.numel()));
  // a = pooled ‖ emb(s_0) ‖ ... ‖ emb(s_5), on the host: it is the prompt's, not the step's.
  Tensor a({1, c.add_embed_input()});
  const Tensor p = pooled.to_f32(), s = size_cond.to_f32();
  std::copy_n(p.f32(), c.pooled_dim, a.f32());
  for (int i = 0; i < 6; ++i) host_sinusoid(double(s.f32()[i]), c.size_embed_dim, a.f32() + c.pooled_dim + i * c.size_embed_dim);
  const Tensor a_dev = backend_.upload(compute_ == DType::f32 ? a : a.to_dtype(compute_));  // [1, add_in]
  Branch b;
  b.add_emb = backend_.alloc({1, c.time_embed_dim()}, compute_);
  const Tensor hidden = backend_.alloc({1, c.time_embed_dim()}, compute_);
  backend_.linear(a_dev, w("add_embedding.linear_1.weight"), &w("add_embedding.linear_1.bias"), hidden);
  backend_.silu(hidden, hidden);
  backend_.linear(hidden, w("add_embedding.linear_2.weight"), &w("add_embedding.linear_2.bias"), b.add_emb);
  const Tensor t = txt.to_f32();
  b.context = backend_.upload(compute_ == DType::f32 ? t : t.to_dtype(compute_));  // [Ltxt, context_dim]
  backend_.synchronize();  // the host tensors above go now
  return b;
}

void SdxlUnet::set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                             const std::vector<SequenceShard>& shards, int position) {
  const SdxlConfig& c = config_;
  require_input(shards.size() <= 1 && position == 0,
                c.name + ": the U-Net runs on one rank per image (its patch parallelism is not built yet)");
  const int64_t m = c.latent_multiple();
  require_input(grid_h > 0 && grid_w > 0 && grid_h % m == 0 && grid_w % m == 0,
                c.name + ": the latent's sides must be positive multiples of " + std::to_string(m) + ", got " +
                    std::to_string(grid_h) + "x" + std::to_string(grid_w));
  require_input(condition.negative_txt.defined() == condition.negative_y.defined(),
                c.name + ": a negative prompt needs both its hidden states and its pooled embedding");
  if (condition.negative_txt.defined())
    require_input(condition.negative_txt.shape() == condition.txt.shape(),
                  c.name + ": the negative prompt's hidden states " + shape_string(condition.negative_txt.shape()) +
                      " differ from the prompt's " + shape_string(condition.txt.shape()));
  branches_.clear();
  branches_.push_back(embed_branch(condition.txt, condition.y, condition.size_cond));
  if (condition.negative_txt.defined())
    branches_.push_back(embed_branch(condition.negative_txt, condition.negative_y, condition.size_cond));
  lay_out(grid_h, grid_w, condition.txt.dim(0));
  attention_->prepare(backend_, {SequenceShard::whole(0, grid_h * grid_w)}, 0);
}

void SdxlUnet::time_embedding(const Tensor& t) {
  // e_t = linear_2(silu(linear_1(emb(t, C_0)))); the op's argument is 1000 t, t = timestep / 1000
  backend_.timestep_embedding(t, time_proj_);
  backend_.linear(time_proj_.reshape({1, time_proj_.numel()}), w("time_embedding.linear_1.weight"),
                  &w("time_embedding.linear_1.bias"), e_hidden_);
  backend_.silu(e_hidden_, e_hidden_);
  backend_.linear(e_hidden_, w("time_embedding.linear_2.weight"), &w("time_embedding.linear_2.bias"), e_time_);
}

void SdxlUnet::group_norm(const std::string& name, const Tensor& x, float eps, const Tensor& y) {
  // x, y: [C, h, w]; statistics of each of the groups over its C/groups channels and all pixels
  backend_.group_sums(x, config_.groups, sums_);
  const double count = double(x.dim(0) / config_.groups) * double(x.dim(1)) * double(x.dim(2));
  backend_.group_norm(x, sums_, count, eps, w(name + ".weight"), w(name + ".bias"), y);
}

void SdxlUnet::resnet(const std::string& name, const Tensor& x, const Tensor& out) {
  const int64_t h = x.dim(1), wd = x.dim(2);
  const Tensor& conv1 = w(name + ".conv1.weight");
  const int64_t Co = conv1.dim(0);
  const Tensor normed = view(normed_, x.shape());  // [Ci, h, w]
  group_norm(name + ".norm1", x, kResnetEps, normed);
  backend_.silu(normed, normed);
  // conv1's bias this step: conv1.bias + time_emb_proj(silu(e)) (one value per channel)
  const Tensor bias = view(conv_bias_, {1, Co});
  backend_.linear(e_silu_, w(name + ".time_emb_proj.weight"), &static_bias_.at(name), bias);
  const Tensor hidden = view(hidden_, {Co, h, wd});
  backend_.conv2d(normed, conv1, bias.reshape({Co}), /*pad_rows=*/1, hidden);
  group_norm(name + ".norm2", hidden, kResnetEps, hidden);
  backend_.silu(hidden, hidden);
  backend_.conv2d(hidden, w(name + ".conv2.weight"), w(name + ".conv2.bias"), 1, out);
  if (weights_.has(name + ".conv_shortcut.weight")) {
    const Tensor shortcut = view(normed_, {Co, h, wd});  // normed is no longer needed
    backend_.conv2d(x, w(name + ".conv_shortcut.weight"), w(name + ".conv_shortcut.bias"), 0, shortcut);
    backend_.add(shortcut, out, out);
  } else {
    backend_.add(x, out, out);
  }
}

void SdxlUnet::transformer_block(const std::string& name, const Tensor& z, int64_t heads, const Tensor& context) {
  // z: [n, C] the residual stream; context: [Ltxt, context_dim]
  const int64_t n = z.dim(0), C = z.dim(1), D = config_.head_dim, Lt = context.dim(0), F = 4 * C;
  const Tensor a = view(tok_a_, {n, C}), q = view(q_, {n, C}), k = view(k_, {n, C}), v = view(v_, {n, C});
  const Tensor o = view(o_, {n, C});
  const Tensor ones = ones_.rows(0, C);
  const auto heads_of = [&](const Tensor& t) { return t.reshape({t.dim(0), heads, D}); };
  const auto residual = [&](const std::string& linear, const Tensor& x) {  // z += linear(x)
    backend_.linear(x, w(linear + ".weight"), &w(linear + ".bias"), z, Epilogue::gated_residual, &ones);
  };
  // Self-attention over the level's pixels (through the strategy: the plans' hook).
  backend_.layer_norm_affine(z, w(name + ".norm1.weight"), w(name + ".norm1.bias"), kLayerNormEps, a);
  backend_.linear(a, w(name + ".attn1.to_q.weight"), nullptr, q);
  backend_.linear(a, w(name + ".attn1.to_k.weight"), nullptr, k);
  backend_.linear(a, w(name + ".attn1.to_v.weight"), nullptr, v);
  attention_->attend(backend_, heads_of(q), heads_of(k), heads_of(v), heads_of(o));
  residual(name + ".attn1.to_out.0", o);
  // Cross-attention on the text: keys and values from the prompt's hidden states.
  backend_.layer_norm_affine(z, w(name + ".norm2.weight"), w(name + ".norm2.bias"), kLayerNormEps, a);
  backend_.linear(a, w(name + ".attn2.to_q.weight"), nullptr, q);
  const Tensor kc = view(ctx_k_, {Lt, C}), vc = view(ctx_v_, {Lt, C});
  backend_.linear(context, w(name + ".attn2.to_k.weight"), nullptr, kc);
  backend_.linear(context, w(name + ".attn2.to_v.weight"), nullptr, vc);
  backend_.attention(heads_of(q), heads_of(kc), heads_of(vc), heads_of(o), Tensor());
  residual(name + ".attn2.to_out.0", o);
  // GEGLU feed-forward: u * gelu(g), u the first 4C columns of the projection, g the last 4C.
  backend_.layer_norm_affine(z, w(name + ".norm3.weight"), w(name + ".norm3.bias"), kLayerNormEps, a);
  const Tensor ff = view(ff_, {n, 2 * F});
  backend_.linear(a, w(name + ".ff.net.0.proj.weight"), &w(name + ".ff.net.0.proj.bias"), ff);
  const Tensor u = ff.cols(0, F), g = ff.cols(F, F);
  backend_.gelu_erf(g, g);
  backend_.multiply(u, g, u);
  residual(name + ".ff.net.2", u);
}

void SdxlUnet::transformer(const std::string& name, const Tensor& x, int layers, const Tensor& context) {
  // x: [C, h, w], updated in place
  const int64_t C = x.dim(0), n = x.dim(1) * x.dim(2);
  const Tensor normed = view(normed_, x.shape());
  group_norm(name + ".norm", x, kTransformerEps, normed);
  const Tensor a = view(tok_a_, {n, C}), z = view(tok_z_, {n, C});
  backend_.transpose(normed.reshape({C, n}), a);
  backend_.linear(a, w(name + ".proj_in.weight"), &w(name + ".proj_in.bias"), z);
  for (int k = 0; k < layers; ++k)
    transformer_block(name + ".transformer_blocks." + std::to_string(k), z, C / config_.head_dim, context);
  backend_.linear(z, w(name + ".proj_out.weight"), &w(name + ".proj_out.bias"), a);
  backend_.transpose(a, normed.reshape({C, n}));
  backend_.add(x, normed, x);
}

void SdxlUnet::downsample(const std::string& name, const Tensor& x, const Tensor& out) {
  // The stride-2 convolution (padding 1) is the stride-1 one at the even rows and columns:
  // convolve, keep the even rows (a strided copy), transpose, keep the even rows again (the
  // even columns), transpose back.
  const int64_t C = x.dim(0), h = x.dim(1), wd = x.dim(2), half = C * h / 2;
  const Tensor full = view(normed_, {C, h, wd});
  backend_.conv2d(x, w(name + ".weight"), w(name + ".bias"), 1, full);
  const Tensor even_rows = view(hidden_, {half, wd});                  // [C h/2, w]
  backend_.copy(full.reshape({half, 2 * wd}).cols(0, wd), even_rows);
  const Tensor columns = view(tok_a_, {wd, half});                      // [w, C h/2]
  backend_.transpose(even_rows, columns);
  const Tensor even_columns = view(tok_z_, {wd / 2, half});             // [w/2, C h/2]
  backend_.copy(columns.reshape({wd / 2, 2 * half}).cols(0, half), even_columns);
  backend_.transpose(even_columns, out.reshape({half, wd / 2}));
}

void SdxlUnet::upsample(const std::string& name, const Tensor& x, const Tensor& out) {
  const Tensor up = view(upsampled_, {x.dim(0), 2 * x.dim(1), 2 * x.dim(2)});
  backend_.upsample_nearest(x, up);
  backend_.conv2d(up, w(name + ".weight"), w(name + ".bias"), 1, out);
}

void SdxlUnet::concat(const Tensor& x, const Tensor& skip, const Tensor& out) {
  const int64_t Cx = x.dim(0), Cs = skip.dim(0), n = x.dim(1) * x.dim(2);
  const Tensor flat = out.reshape({Cx + Cs, n});
  backend_.copy(x.reshape({Cx, n}), flat.rows(0, Cx));
  backend_.copy(skip.reshape({Cs, n}), flat.rows(Cx, Cs));
}

void SdxlUnet::run_branch(const Branch& branch, const Tensor& out) {
  const SdxlConfig& c = config_;
  const int L = c.levels();
  backend_.add(e_time_, branch.add_emb, e_);
  backend_.silu(e_, e_silu_);  // every resnet's time projection reads silu(e)
  backend_.conv2d(latent_, w("conv_in.weight"), w("conv_in.bias"), 1, skips_[0]);
  size_t k = 0;  // the last skip written
  for (int l = 0; l < L; ++l) {
    const std::string p = "down_blocks." + std::to_string(l);
    for (int j = 0; j < c.layers_per_block; ++j, ++k) {
      resnet(p + ".resnets." + std::to_string(j), skips_[k], skips_[k + 1]);
      if (c.layers(l) > 0) transformer(p + ".attentions." + std::to_string(j), skips_[k + 1], c.layers(l), branch.context);
    }
    if (l + 1 < L) {
      downsample(p + ".downsamplers.0.conv", skips_[k], skips_[k + 1]);
      ++k;
    }
  }
  // The mid block and the up path alternate between the two path buffers.
  const int64_t top = c.width(L - 1), hl = h_ >> (L - 1), wl = w_ >> (L - 1);
  int cur = 0;
  Tensor x = view(path_[0], {top, hl, wl});
  resnet("mid_block.resnets.0", skips_[k], x);
  transformer("mid_block.attentions.0", x, c.mid_layers(), branch.context);
  Tensor y = view(path_[1], {top, hl, wl});
  resnet("mid_block.resnets.1", x, y);
  x = y;
  cur = 1;
  for (int u = 0; u < L; ++u) {
    const int level = L - 1 - u;
    const std::string p = "up_blocks." + std::to_string(u);
    const int64_t C = c.width(level), h = x.dim(1), wd = x.dim(2);
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const Tensor& skip = skips_[k--];
      const Tensor joined = view(concat_, {x.dim(0) + skip.dim(0), h, wd});
      concat(x, skip, joined);
      cur = 1 - cur;
      x = view(path_[size_t(cur)], {C, h, wd});
      resnet(p + ".resnets." + std::to_string(j), joined, x);
      if (c.layers(level) > 0) transformer(p + ".attentions." + std::to_string(j), x, c.layers(level), branch.context);
    }
    if (u + 1 < L) {
      cur = 1 - cur;
      const Tensor up = view(path_[size_t(cur)], {C, 2 * h, 2 * wd});
      upsample(p + ".upsamplers.0.conv", x, up);
      x = up;
    }
  }
  const Tensor normed = view(normed_, x.shape());
  group_norm("conv_norm_out", x, kResnetEps, normed);
  backend_.silu(normed, normed);
  backend_.conv2d(normed, w("conv_out.weight"), w("conv_out.bias"), 1, out);
}

void SdxlUnet::forward(const Tensor& tokens, const Tensor& scalars, const Tensor& eps) {
  // tokens, eps: [h w, 4] (pixel-major); scalars: [2] (t / 1000, guidance)
  FRESCO_ASSERT(h_ > 0, config_.name + ": forward before set_condition");
  const int64_t n = h_ * w_, C = config_.latent_channels;
  FRESCO_ASSERT(tokens.rank() == 2 && tokens.dim(0) == n && tokens.dim(1) == C && eps.shape() == tokens.shape(),
                config_.name + ": forward on tokens " + tokens.describe() + ", eps " + eps.describe() +
                    " for a latent of " + std::to_string(h_) + "x" + std::to_string(w_));
  attention_->begin_forward();
  backend_.copy(tokens, tokens_c_);
  backend_.transpose(tokens_c_, latent_.reshape({C, n}));
  time_embedding(scalars.rows(0, 1));
  for (size_t b = 0; b < branches_.size(); ++b) run_branch(branches_[b], eps_[b]);
  if (branches_.size() == 2) {  // ε = ε_u + g (ε_c − ε_u)
    backend_.subtract(eps_[0], eps_[1], eps_[0]);
    backend_.axpy(scalars.rows(1, 1), eps_[0], eps_[1]);
  }
  backend_.transpose(eps_[branches_.size() - 1].reshape({C, n}), eps_tokens_);
  backend_.copy(eps_tokens_, eps);
  attention_->end_forward(backend_);
}

namespace {
[[noreturn]] void refuse(const std::string& what) {
  throw InputError(what + " is for the FLUX transformer; the SDXL U-Net runs without it");
}
}  // namespace

void SdxlUnet::set_step_cache(const StepCacheLayout& layout) {
  if (layout.signal != CacheSignal::none) refuse("step caching (--cache)");
}
void SdxlUnet::forward_head(const Tensor&, const Tensor&) { refuse("step caching (--cache)"); }
void SdxlUnet::forward_tail(const Tensor&, bool) { refuse("step caching (--cache)"); }
void SdxlUnet::use_fp8_linears() { refuse("--dtype fp8"); }

}  // namespace fresco
