#include "src/model/flux_model.hpp"

#include <algorithm>
#include <cstdlib>

#include "src/core/error.hpp"
#include "src/model/fp8_weights.hpp"
#include "src/model/rope.hpp"

namespace fresco {

namespace {
constexpr float kNormEps = 1e-6f;
constexpr int kTimeEmbedWidth = 256;
}  // namespace

// Activation buffers for one shard, all from one arena. n = rows of the shard (text rows
// first, then image rows), d hidden, m MLP width, nt/ni = text/image rows of the shard;
// dtype: the compute dtype unless noted.
struct FluxTransformer::Buffers {
  SequenceShard shard;
  int64_t txt_len = -1, img_len = -1;  // rows of the shard the arena was laid out for
  Arena arena;
  uint64_t epoch = 0;  // bumped with every new arena (FluxTransformer::buffers_epoch)
  Tensor txt_input;     // [nt, context_in_dim]  this shard's prompt rows
  Tensor y_input;       // [vec_in_dim]
  Tensor txt_embedded;  // [nt, d]     txt_in(txt rows), fixed for the image
  Tensor y_embedded;    // [d]         vector_in(y), fixed for the image
  Tensor rope_cos;      // [n, D/2] f32 angles of each row's true position ids
  Tensor rope_sin;      // [n, D/2] f32
  Tensor scalars;       // [2] f32     t, guidance of the one-off forward(img, t, g, v)
  Tensor img_tokens;    // [ni, in_channels] the step's image tokens in the compute dtype
  Tensor temb;          // [256]
  Tensor embed_hidden;  // [d]
  Tensor embed_out;     // [d]
  Tensor vec;           // [d]         conditioning vector
  Tensor vec_silu;      // [d]
  Tensor mod;           // [6, d]      modulation chunks (shift, scale, gate, ...)
  Tensor mod_txt;       // [6, d]
  Tensor x;             // [n, d]      residual stream, text rows first
  Tensor normed;        // [n, d]
  Tensor fused;         // [n, 3d + m] qkv | mlp: single-block linear1 output; double blocks use
                        //             columns [0, 3d) for qkv and [3d, 3d + m) for the MLP hidden
  Tensor q, k;          // [n, H, D]   normed and rotated
  Tensor concat;        // [n, d + m]  attention output | gelu(mlp): single-block linear2 input;
                        //             double blocks use columns [0, d) for the attention output
  Tensor host_scalars;  // [2] f32 host staging of `scalars`
  // Step caching only (docs/step-cache.md):
  Tensor cache_signal;     // [ni, d]  S of this step (x⁰_img first, for the head residual)
  Tensor cache_reference;  // [ni, d]  P: the signal the next step is measured against
  Tensor cache_residual;   // [n, d]   Q: what the cached blocks added in the last computed step
  Tensor cache_sums;       // [2] f64  Σ|S − P|, Σ|P| over this rank's image rows
  bool cached_layout = false;  // the arena holds the cache's buffers
  // FP8 only: a token linear's input quantized per row (FluxTransformer::quantize).
  Tensor act_q;      // [n, d + m] e4m3
  Tensor act_scale;  // [n] f32
  bool fp8_layout = false;

  // Takes every buffer from `a` (a measuring arena only counts).
  void lay_out(Arena& a, const FluxConfig& c, DType dt, int64_t nt, int64_t ni, bool with_cache, bool fp8) {
    const int64_t n = nt + ni, d = c.hidden, H = c.heads, D = c.head_dim(), m = c.mlp_hidden();
    txt_input = a.take({nt, c.context_in_dim}, dt);
    y_input = a.take({c.vec_in_dim}, dt);
    txt_embedded = a.take({nt, d}, dt);
    y_embedded = a.take({d}, dt);
    rope_cos = a.take({n, D / 2}, DType::f32);
    rope_sin = a.take({n, D / 2}, DType::f32);
    scalars = a.take({2}, DType::f32);
    img_tokens = a.take({ni, c.in_channels}, dt);
    temb = a.take({kTimeEmbedWidth}, dt);
    embed_hidden = a.take({d}, dt);
    embed_out = a.take({d}, dt);
    vec = a.take({d}, dt);
    vec_silu = a.take({d}, dt);
    mod = a.take({6, d}, dt);
    mod_txt = a.take({6, d}, dt);
    x = a.take({n, d}, dt);
    normed = a.take({n, d}, dt);
    fused = a.take({n, 3 * d + m}, dt);
    q = a.take({n, H, D}, dt);
    k = a.take({n, H, D}, dt);
    concat = a.take({n, d + m}, dt);
    fp8_layout = fp8;
    if (fp8) {
      act_q = a.take({n, d + m}, DType::e4m3);
      act_scale = a.take({n}, DType::f32);
    }
    cached_layout = with_cache;
    if (!with_cache) return;
    cache_signal = a.take({ni, d}, dt);
    cache_reference = a.take({ni, d}, dt);
    cache_residual = a.take({n, d}, dt);
    cache_sums = a.take({2}, DType::f64);
  }
};

FluxTransformer::FluxTransformer(FluxConfig config, ModelWeights weights, Backend& backend,
                                 std::unique_ptr<AttentionStrategy> attention, DType compute)
    : config_(std::move(config)),
      spec_(flux_denoiser_spec(config_)),
      weights_(std::move(weights)),
      backend_(backend),
      attention_(std::move(attention)),
      compute_(compute),
      buf_(std::make_unique<Buffers>()) {
  FRESCO_ASSERT(compute == DType::f32 || compute == DType::bf16 || compute == DType::f16,
                std::string("compute dtype ") + dtype_name(compute));
  buf_->host_scalars = Tensor({2});
  const DType weight = weights_.get("img_in.weight").dtype();
  for (const OpDesc& op : ops_needed(compute, weight))
    if (!backend_.supports(op))
      throw ComputeError("the " + backend_.name() + " backend cannot run the FLUX forward: it lacks " +
                         op.describe());
}

std::vector<OpDesc> FluxTransformer::ops_needed(DType compute, DType weight) {
  std::vector<OpDesc> ops = dit_forward_ops(compute, weight);
  ops.push_back({Op::gelu_tanh, compute, weight, compute, DType::f32, Epilogue::none, true});
  ops.push_back({Op::add, compute, weight, compute, DType::f32});
  return ops;
}

FluxTransformer::~FluxTransformer() = default;
FluxTransformer::FluxTransformer(FluxTransformer&&) noexcept = default;

void FluxTransformer::linear(const std::string& name, const Tensor& x, const Tensor& y,
                             Epilogue epilogue, const Tensor* gate) {
  const Tensor& bias = w(name + ".bias");
  backend_.linear(x, w(name + ".weight"), &bias, y, epilogue, gate);
}

std::vector<std::string> FluxTransformer::token_linear_names() const { return flux_token_linear_names(config_); }

void FluxTransformer::use_fp8_linears() {
  for (const OpDesc& op : {OpDesc{Op::quantize_rows, compute_, compute_, DType::e4m3},
                           OpDesc{Op::norm_modulate_fp8, compute_, compute_, DType::e4m3},
                           OpDesc{Op::linear_fp8, DType::e4m3, DType::e4m3, compute_},
                           OpDesc{Op::linear_fp8, DType::e4m3, DType::e4m3, compute_, DType::f32, Epilogue::gelu_tanh, true},
                           OpDesc{Op::linear_fp8, DType::e4m3, DType::e4m3, compute_, DType::f32,
                                  Epilogue::gated_residual, true}})
    if (!backend_.supports(op))
      throw ComputeError("the " + backend_.name() + " backend cannot run --dtype fp8: it lacks " + op.describe());
  // Each weight [N, K] quantized per output channel, once (set-up: allocates); an FP8 weights
  // file's are already, by the same rule (src/model/fp8_weights.hpp), and used as loaded.
  for (const std::string& name : token_linear_names()) {
    const Tensor& weight = w(name + ".weight");
    if (weight.dtype() == DType::e4m3) {
      fp8_[name] = Fp8Weight{weight, w(name + kWeightScaleSuffix)};
      continue;
    }
    Fp8Weight f{backend_.alloc(weight.shape(), DType::e4m3), backend_.alloc({weight.dim(0)}, DType::f32)};
    backend_.quantize_rows(weight, f.q, f.scale);
    fp8_[name] = std::move(f);
  }
  backend_.synchronize();
}

void FluxTransformer::use_fp8_attention() {
  if (!backend_.supports(OpDesc{Op::attention_fp8, compute_, compute_, compute_}))
    throw ComputeError("the " + backend_.name() + " backend cannot run --fp8-attention in " + dtype_name(compute_) +
                       ": it lacks attention_fp8 (FP8 attention needs bf16 activations and, on a GPU, cuDNN's FP8 "
                       "attention engine: Hopper or newer)");
  fp8_attention_ = true;
}

void FluxTransformer::attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  // The plan runs the backend's joint_attention: FP8 where chosen, except the hybrid schedule's bf16
  // steps; off again afterwards, so that another model on this backend (the decoder) is not affected.
  backend_.set_attention_fp8(fp8_attention_ && fp8_active_);
  attention_->attend(backend_, q, k, v, o);
  backend_.set_attention_fp8(false);
}

FluxTransformer::TokenInput FluxTransformer::norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                                           const Tensor& normed) {
  if (!fp8_now()) {
    backend_.norm_modulate(x, shift, scale, kNormEps, normed);
    return {normed, {}, {}};
  }
  const TokenInput in = quantized_input(normed);  // only the quantized rows are made, not `normed`
  backend_.norm_modulate_fp8(x, shift, scale, kNormEps, in.q, in.scale);
  return in;
}

FluxTransformer::TokenInput FluxTransformer::quantized_input(const Tensor& x) const {
  const Buffers& b = *buf_;
  return {x, b.act_q.rows(0, x.dim(0)).cols(0, x.dim(1)), b.act_scale.rows(0, x.dim(0))};
}

FluxTransformer::TokenInput FluxTransformer::quantize(const Tensor& x) {
  if (!fp8_now()) return {x, {}, {}};
  const TokenInput in = quantized_input(x);
  backend_.quantize_rows(x, in.q, in.scale);
  return in;
}

void FluxTransformer::token_linear(const std::string& name, const TokenInput& in, const Tensor& y, Epilogue epilogue,
                                   const Tensor* gate, int64_t row0, int64_t count) {
  const Tensor& weight = w(name + ".weight");
  if (count < 0) count = weight.dim(0);
  const Tensor bias = w(name + ".bias").rows(row0, count);
  const auto f = fp8_.find(name);
  if (!fp8_active_ || f == fp8_.end()) {
    FRESCO_ASSERT(weight.dtype() != DType::e4m3,
                  "token_linear " + name + ": an FP8 weights file's e4m3 weight runs only as an FP8 linear");
    backend_.linear(in.x, weight.rows(row0, count), &bias, y, epilogue, gate);
    return;
  }
  FRESCO_ASSERT(in.q.defined(), "token_linear " + name + ": the input was not quantized");
  backend_.linear_fp8(in.q, in.scale, f->second.q.rows(row0, count), f->second.scale.rows(row0, count), &bias, y,
                      epilogue, gate);
}

void FluxTransformer::set_condition(const Tensor& txt, const Tensor& y, int64_t grid_h,
                                    int64_t grid_w, const std::vector<SequenceShard>& shards,
                                    int position) {
  const FluxConfig& c = config_;
  FRESCO_ASSERT(txt.rank() == 2 && txt.dim(1) == c.context_in_dim && y.numel() == c.vec_in_dim &&
                    txt.device() == Device::cpu && y.device() == Device::cpu,
                "set_condition: txt " + txt.describe() + " / y " + y.describe());
  const std::vector<SequenceShard> all = condition_shards(shards, position, txt.dim(0), grid_h * grid_w);
  const SequenceShard sh = all[size_t(position)];
  const int64_t nt = sh.txt_rows(), ni = sh.img_rows();
  Buffers& b = *buf_;
  const bool with_cache = cache_.signal != CacheSignal::none;
  const bool fp8 = fp8_linears();
  if (b.txt_len != nt || b.img_len != ni || b.cached_layout != with_cache || b.fp8_layout != fp8) {  // a new arena (dry run, then for real)
    Arena measure;
    b.lay_out(measure, c, compute_, nt, ni, with_cache, fp8);
    b.arena = Arena(backend_.alloc_storage(measure.used()));
    b.lay_out(b.arena, c, compute_, nt, ni, with_cache, fp8);
    b.txt_len = nt;
    b.img_len = ni;
    ++b.epoch;
  }
  b.shard = sh;
  attention_->prepare(backend_, all, position);
  // Position ids of the rows held here: text rows sit at the origin, image token i*grid_w+j at
  // (0, i, j).
  const auto all_ids = joint_position_ids(sh.txt_len, grid_h, grid_w);
  std::vector<PositionId> ids(size_t(nt), PositionId{0, 0, 0});
  const auto first_img = all_ids.begin() + sh.txt_len + sh.img_start;
  ids.insert(ids.end(), first_img, first_img + ni);
  const RopeTables rope = make_rope_tables(c, ids);
  backend_.copy(rope.cos, b.rope_cos);
  backend_.copy(rope.sin, b.rope_sin);
  // The prompt in the compute dtype (converted on the host: copies between devices keep dtypes).
  const Tensor txt_rows = txt.rows(sh.txt_begin, nt).to_f32().to_dtype(compute_);
  const Tensor y_host = y.reshape({c.vec_in_dim}).to_f32().to_dtype(compute_);
  backend_.copy(txt_rows, b.txt_input);
  backend_.copy(y_host, b.y_input);

  // txt = txt_in(txt rows of the shard); vector_in(y) = out_layer(silu(in_layer(y)))
  linear("txt_in", b.txt_input, b.txt_embedded);
  linear("vector_in.in_layer", b.y_input, b.embed_hidden);
  backend_.silu(b.embed_hidden, b.embed_hidden);
  linear("vector_in.out_layer", b.embed_hidden, b.y_embedded);
  backend_.synchronize();  // the host staging tensors above die here
}

const SequenceShard& FluxTransformer::shard() const { return buf_->shard; }
uint64_t FluxTransformer::buffers_epoch() const { return buf_->epoch; }

void FluxTransformer::embed_vector(const Tensor& scalars) {
  // vec = time_in(temb(t)) [+ guidance_in(temb(g))] + vector_in(y)
  Buffers& b = *buf_;
  auto mlp_embed = [&](const std::string& prefix, const Tensor& s) {
    backend_.timestep_embedding(s, b.temb);
    linear(prefix + ".in_layer", b.temb, b.embed_hidden);
    backend_.silu(b.embed_hidden, b.embed_hidden);
    linear(prefix + ".out_layer", b.embed_hidden, b.embed_out);
    backend_.add(b.vec, b.embed_out, b.vec);
  };
  backend_.copy(b.y_embedded, b.vec);
  mlp_embed("time_in", scalars.rows(0, 1));
  if (config_.guidance_embed) mlp_embed("guidance_in", scalars.rows(1, 1));
  backend_.silu(b.vec, b.vec_silu);
}

void FluxTransformer::norm_rope_qk(const Tensor& qkv, int64_t row0, const std::string& norm_prefix) {
  // qkv: [Ls, >= 3d] with columns q | k | v (each head-major, then D), any row stride
  Buffers& b = *buf_;
  const int64_t Ls = qkv.dim(0), d = config_.hidden, H = config_.heads, D = config_.head_dim();
  const Tensor cos = b.rope_cos.rows(row0, Ls), sin = b.rope_sin.rows(row0, Ls);
  backend_.rms_norm_rope(qkv.cols(0, d).reshape({Ls, H, D}), w(norm_prefix + ".norm.query_norm.scale"),
                         kNormEps, cos, sin, b.q.rows(row0, Ls));
  backend_.rms_norm_rope(qkv.cols(d, d).reshape({Ls, H, D}), w(norm_prefix + ".norm.key_norm.scale"),
                         kNormEps, cos, sin, b.k.rows(row0, Ls));
}

void FluxTransformer::double_block(int index) {
  Buffers& b = *buf_;
  const std::string p = "double_blocks." + std::to_string(index) + ".";
  const int64_t d = config_.hidden, n = b.x.dim(0), m = config_.mlp_hidden();
  const int64_t H = config_.heads, D = config_.head_dim();
  struct Stream {
    const char* name;
    int64_t row0, len;
    Tensor mod;  // [6, d]: shift1, scale1, gate1, shift2, scale2, gate2
  };
  const Stream streams[2] = {{"txt", 0, b.txt_len, b.mod_txt}, {"img", b.txt_len, b.img_len, b.mod}};
  const Tensor qkv = b.fused.cols(0, 3 * d), hidden = b.fused.cols(3 * d, m);  // [n, 3d], [n, m]
  const Tensor attn = b.concat.cols(0, d);                                     // [n, d]

  for (const Stream& s : streams) {
    const std::string sp = p + s.name;
    linear(sp + "_mod.lin", b.vec_silu, s.mod.reshape({6 * d}));
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    token_linear(sp + "_attn.qkv", norm_modulate(x, s.mod.rows(0, 1), s.mod.rows(1, 1), normed), qkv.rows(s.row0, s.len));
    norm_rope_qk(qkv.rows(s.row0, s.len), s.row0, sp + "_attn");
  }
  attend(b.q, b.k, qkv.cols(2 * d, d).reshape({n, H, D}), attn.reshape({n, H, D}));
  for (const Stream& s : streams) {
    const std::string sp = p + s.name;
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    const Tensor gate1 = s.mod.rows(2, 1), gate2 = s.mod.rows(5, 1);
    token_linear(sp + "_attn.proj", quantize(attn.rows(s.row0, s.len)), x, Epilogue::gated_residual, &gate1);
    token_linear(sp + "_mlp.0", norm_modulate(x, s.mod.rows(3, 1), s.mod.rows(4, 1), normed), hidden.rows(s.row0, s.len),
                 Epilogue::gelu_tanh);
    token_linear(sp + "_mlp.2", quantize(hidden.rows(s.row0, s.len)), x, Epilogue::gated_residual, &gate2);
  }
}

void FluxTransformer::single_block(int index) {
  Buffers& b = *buf_;
  const std::string p = "single_blocks." + std::to_string(index);
  const int64_t d = config_.hidden, L = b.x.dim(0), m = config_.mlp_hidden();  // L: rows here
  const int64_t H = config_.heads, D = config_.head_dim();
  const Tensor mod = b.mod.rows(0, 3);  // [3, d]: shift, scale, gate
  const Tensor gate = mod.rows(2, 1);
  linear(p + ".modulation.lin", b.vec_silu, mod.reshape({3 * d}));
  const TokenInput normed = norm_modulate(b.x, mod.rows(0, 1), mod.rows(1, 1), b.normed);
  // linear1 [L, 3d + m] = qkv | mlp, as two products on row slices of its weight: the qkv part
  // into `fused`, the MLP part with the GELU epilogue straight into its place in `concat`
  // (one pass over the [L, m] hidden instead of three; measured −2.6 ms per 1024² step against
  // one product and a separate GELU, docs/performance.md).
  // (linear1's weight [3d + m, d]: rows [0, 3d) qkv, [3d, 3d + m) MLP.)
  token_linear(p + ".linear1", normed, b.fused.cols(0, 3 * d), Epilogue::none, nullptr, 0, 3 * d);
  token_linear(p + ".linear1", normed, b.concat.cols(d, m), Epilogue::gelu_tanh, nullptr, 3 * d, m);
  norm_rope_qk(b.fused, 0, p);
  attend(b.q, b.k, b.fused.cols(2 * d, d).reshape({L, H, D}), b.concat.cols(0, d).reshape({L, H, D}));
  token_linear(p + ".linear2", quantize(b.concat), b.x, Epilogue::gated_residual, &gate);
}

void FluxTransformer::final_layer(const Tensor& velocity) {
  Buffers& b = *buf_;
  const int64_t d = config_.hidden;
  const Tensor mod = b.mod.rows(0, 2);  // [2, d]: shift, scale
  linear("final_layer.adaLN_modulation.1", b.vec_silu, mod.reshape({2 * d}));
  const Tensor normed = b.normed.rows(b.txt_len, b.img_len);
  backend_.norm_modulate(b.x.rows(b.txt_len, b.img_len), mod.rows(0, 1), mod.rows(1, 1), kNormEps,
                         normed);
  linear("final_layer.linear", normed, velocity);
}

void FluxTransformer::begin(const Tensor& img, const Tensor& scalars) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(b.shard.count() > 0, "forward before set_condition");
  FRESCO_ASSERT(img.dim(0) == b.img_len && img.dim(1) == config_.in_channels,
                "forward: img " + img.describe() + " does not match the condition's grid");
  FRESCO_ASSERT(scalars.numel() == 2 && scalars.dtype() == DType::f32,
                "forward: scalars " + scalars.describe());
  attention_->begin_forward();
  embed_vector(scalars);
  backend_.copy(img, b.img_tokens);  // to the compute dtype
  backend_.copy(b.txt_embedded, b.x.rows(0, b.txt_len));
  linear("img_in", b.img_tokens, b.x.rows(b.txt_len, b.img_len));
}

void FluxTransformer::block(int index) {
  if (index < config_.depth)
    double_block(index);
  else
    single_block(index - config_.depth);
}

void FluxTransformer::forward(const Tensor& img, const Tensor& scalars, const Tensor& velocity) {
  begin(img, scalars);
  for (int i = 0; i < spec_.blocks; ++i) block(i);
  final_layer(velocity);
  attention_->end_forward(backend_);
}

void FluxTransformer::set_step_cache(const StepCacheLayout& layout) {
  FRESCO_ASSERT(layout.signal == CacheSignal::none ||
                    (layout.head_blocks >= 0 && layout.tail_blocks >= 0 &&
                     layout.head_blocks + layout.tail_blocks < spec_.blocks &&
                     (layout.signal != CacheSignal::head_residual || layout.head_blocks >= 1) &&
                     (layout.signal != CacheSignal::modulated_input || layout.head_blocks == 0)),
                "step cache: head and tail blocks of a " + std::to_string(spec_.blocks) + "-block model");
  if (layout.signal != CacheSignal::none)
    for (const OpDesc& op : {OpDesc{Op::subtract, compute_, compute_, compute_},
                             OpDesc{Op::change_sums, compute_, compute_, DType::f64}})
      if (!backend_.supports(op))
        throw ComputeError("the " + backend_.name() + " backend cannot run the step cache: it lacks " + op.describe());
  cache_ = layout;  // the buffers follow at the next set_condition
}

const Tensor& FluxTransformer::cache_sums() const { return buf_->cache_sums; }

void FluxTransformer::forward_head(const Tensor& img, const Tensor& scalars) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(cache_.signal != CacheSignal::none && b.cached_layout, "forward_head without a step cache");
  begin(img, scalars);
  const Tensor x_img = b.x.rows(b.txt_len, b.img_len);  // [ni, d]
  if (cache_.signal == CacheSignal::head_residual) {
    backend_.copy(x_img, b.cache_signal);  // x⁰_img
    for (int i = 0; i < cache_.head_blocks; ++i) block(i);
    backend_.subtract(x_img, b.cache_signal, b.cache_signal);  // S = x^F_img − x⁰_img
    backend_.change_sums(b.cache_signal, b.cache_reference, b.cache_sums);
    return;  // P moves to S only when the step computes (forward_tail)
  }
  // TeaCache: S = the first double block's modulated image input; P is the previous step's.
  const int64_t d = config_.hidden;
  const Tensor mod = b.mod;  // [6, d]: shift1, scale1, ... (block 0 computes it again)
  linear("double_blocks.0.img_mod.lin", b.vec_silu, mod.reshape({6 * d}));
  backend_.norm_modulate(x_img, mod.rows(0, 1), mod.rows(1, 1), kNormEps, b.cache_signal);
  backend_.change_sums(b.cache_signal, b.cache_reference, b.cache_sums);
  backend_.copy(b.cache_signal, b.cache_reference);
}

void FluxTransformer::forward_tail(const Tensor& velocity, bool use_cache) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(cache_.signal != CacheSignal::none && b.cached_layout, "forward_tail without a step cache");
  const int first = cache_.head_blocks, last = spec_.blocks - cache_.tail_blocks;  // cached: [first, last)
  attention_->resume_forward(step_, first);
  if (use_cache) {
    attention_->skip_layers(last - first);
    backend_.add(b.x, b.cache_residual, b.x);  // x = x^F + Q
  } else {
    if (cache_.signal == CacheSignal::head_residual) backend_.copy(b.cache_signal, b.cache_reference);  // P = S
    backend_.copy(b.x, b.cache_residual);  // Z = x^F
    for (int i = first; i < last; ++i) block(i);
    backend_.subtract(b.x, b.cache_residual, b.cache_residual);  // Q = x^last − Z
  }
  for (int i = last; i < spec_.blocks; ++i) block(i);
  final_layer(velocity);
  attention_->end_forward(backend_);
}

void FluxTransformer::forward(const Tensor& img, float t, float guidance, const Tensor& velocity) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(b.scalars.defined(), "forward before set_condition");
  backend_.synchronize();  // the staging tensor may still feed an earlier copy
  b.host_scalars.f32()[0] = t;
  b.host_scalars.f32()[1] = guidance;
  backend_.copy(b.host_scalars, b.scalars);
  forward(img, b.scalars, velocity);
}

}  // namespace fresco
