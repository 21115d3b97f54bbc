#include "src/model/qwen_model.hpp"

#include "src/core/error.hpp"
#include "src/model/rope.hpp"

namespace fresco {

namespace {
constexpr float kNormEps = 1e-6f;  // every LayerNorm and RMSNorm of the model
constexpr int kTimeEmbedWidth = 256;

ComputeError not_yet(const std::string& what) {
  return ComputeError(what + " is not yet for qwen-image (docs/qwen-image.md, \"What Fresco runs\")");
}
}  // namespace

// Activations of one shard, from one arena. n = nt + ni rows (text first), d width, m MLP
// width, H heads of D; the compute dtype unless noted.
struct QwenImageTransformer::Buffers {
  SequenceShard shard;
  int64_t txt_len = -1, img_len = -1;  // rows the arena was laid out for
  Arena arena;
  uint64_t epoch = 0;
  Tensor txt_input;     // [nt, c_txt] this shard's prompt rows
  Tensor txt_normed;    // [nt, c_txt] RMS_{txt_norm}(txt_input)
  Tensor txt_embedded;  // [nt, d]     txt_in(txt_normed), fixed for the image
  Tensor rope_cos;      // [n, D/2] f32 MSRoPE angles of each row's position
  Tensor rope_sin;      // [n, D/2] f32
  Tensor img_tokens;    // [ni, c_in]  the step's tokens in the compute dtype
  Tensor temb;          // [256]       sinusoidal embedding of 1000 t
  Tensor embed_hidden;  // [d]
  Tensor vec;           // [d]         temb after the embedder MLP
  Tensor vec_silu;      // [d]         what every modulation reads
  Tensor mod_img;       // [6, d]      shift1, scale1, gate1, shift2, scale2, gate2
  Tensor mod_txt;       // [6, d]
  Tensor mod_out;       // [2, d]      norm_out: scale, then shift
  Tensor x;             // [n, d]      residual streams, text rows first
  Tensor normed;        // [n, d]
  Tensor qkv;           // [n, 3d]     q | k | v projections, head-major then D
  Tensor q, k;          // [n, H, D]   normed and rotated
  Tensor attn;          // [n, d]      joint attention output
  Tensor hidden;        // [n, m]      GELU(MLP input projection)

  void lay_out(Arena& a, const QwenConfig& c, DType dt, int64_t nt, int64_t ni) {
    const int64_t n = nt + ni, d = c.hidden, H = c.heads, D = c.head_dim(), m = c.mlp_hidden();
    txt_input = a.take({nt, c.context_in_dim}, dt);
    txt_normed = a.take({nt, c.context_in_dim}, dt);
    txt_embedded = a.take({nt, d}, dt);
    rope_cos = a.take({n, D / 2}, DType::f32);
    rope_sin = a.take({n, D / 2}, DType::f32);
    img_tokens = a.take({ni, c.in_channels}, dt);
    temb = a.take({kTimeEmbedWidth}, dt);
    embed_hidden = a.take({d}, dt);
    vec = a.take({d}, dt);
    vec_silu = a.take({d}, dt);
    mod_img = a.take({6, d}, dt);
    mod_txt = a.take({6, d}, dt);
    mod_out = a.take({2, d}, dt);
    x = a.take({n, d}, dt);
    normed = a.take({n, d}, dt);
    qkv = a.take({n, 3 * d}, dt);
    q = a.take({n, H, D}, dt);
    k = a.take({n, H, D}, dt);
    attn = a.take({n, d}, dt);
    hidden = a.take({n, m}, dt);
  }
};

QwenImageTransformer::QwenImageTransformer(QwenConfig config, ModelWeights weights, Backend& backend,
                                           std::unique_ptr<AttentionStrategy> attention, DType compute)
    : config_(std::move(config)),
      spec_(qwen_denoiser_spec(config_)),
      weights_(std::move(weights)),
      backend_(backend),
      attention_(std::move(attention)),
      compute_(compute),
      buf_(std::make_unique<Buffers>()) {
  FRESCO_ASSERT(compute == DType::f32 || compute == DType::bf16 || compute == DType::f16,
                std::string("compute dtype ") + dtype_name(compute));
  const DType weight = weights_.get("img_in.weight").dtype();
  for (const OpDesc& op : ops_needed(compute, weight))
    if (!backend_.supports(op))
      throw ComputeError("the " + backend_.name() + " backend cannot run the Qwen-Image forward: it lacks " +
                         op.describe());
}

QwenImageTransformer::~QwenImageTransformer() = default;

std::vector<OpDesc> QwenImageTransformer::ops_needed(DType compute, DType weight) {
  std::vector<OpDesc> ops = dit_forward_ops(compute, weight);
  ops.push_back({Op::rms_norm_heads, compute, weight, compute, DType::f32});  // txt_norm over the text width
  return ops;
}

void QwenImageTransformer::linear(const std::string& name, const Tensor& x, const Tensor& y, Epilogue epilogue,
                                  const Tensor* gate) {
  const Tensor& bias = w(name + ".bias");
  backend_.linear(x, w(name + ".weight"), &bias, y, epilogue, gate);
}

void QwenImageTransformer::set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                                         const std::vector<SequenceShard>& shards, int position) {
  const QwenConfig& c = config_;
  const Tensor& txt = condition.txt;
  FRESCO_ASSERT(txt.rank() == 2 && txt.dim(1) == c.context_in_dim && txt.device() == Device::cpu,
                "set_condition: txt " + txt.describe());
  const std::vector<SequenceShard> all = condition_shards(shards, position, txt.dim(0), grid_h * grid_w);
  const SequenceShard sh = all[size_t(position)];
  const int64_t nt = sh.txt_rows(), ni = sh.img_rows();
  Buffers& b = *buf_;
  if (b.txt_len != nt || b.img_len != ni) {  // a new arena (dry run, then for real)
    Arena measure;
    b.lay_out(measure, c, compute_, nt, ni);
    b.arena = Arena(backend_.alloc_storage(measure.used()));
    b.lay_out(b.arena, c, compute_, nt, ni);
    b.txt_len = nt;
    b.img_len = ni;
    ++b.epoch;
  }
  b.shard = sh;
  attention_->prepare(backend_, all, position);
  // MSRoPE positions of the rows held here: this shard's text rows, then its image rows.
  const auto all_ids = qwen_position_ids(sh.txt_len, grid_h, grid_w);
  std::vector<PositionId> ids(all_ids.begin() + sh.txt_begin, all_ids.begin() + sh.txt_begin + nt);
  const auto first_img = all_ids.begin() + sh.txt_len + sh.img_start;
  ids.insert(ids.end(), first_img, first_img + ni);
  const RopeTables rope = make_rope_tables(c.axes_dim, c.theta, ids);
  backend_.copy(rope.cos, b.rope_cos);
  backend_.copy(rope.sin, b.rope_sin);
  // The prompt rows in the compute dtype (converted on the host: copies between devices keep dtypes).
  const Tensor txt_rows = txt.rows(sh.txt_begin, nt).to_f32().to_dtype(compute_);
  backend_.copy(txt_rows, b.txt_input);
  // txt = txt_in(RMSNorm(txt)): the RMSNorm spans the whole text width, one "head" of c_txt.
  const int64_t ct = c.context_in_dim;
  backend_.rms_norm_heads(b.txt_input.reshape({nt, 1, ct}), w("txt_norm.weight"), kNormEps,
                          b.txt_normed.reshape({nt, 1, ct}));
  linear("txt_in", b.txt_normed, b.txt_embedded);
  backend_.synchronize();  // the host staging tensors above die here
}

uint64_t QwenImageTransformer::buffers_epoch() const { return buf_->epoch; }

void QwenImageTransformer::block(int index) {
  Buffers& b = *buf_;
  const std::string p = "transformer_blocks." + std::to_string(index) + ".";
  const int64_t d = config_.hidden, n = b.x.dim(0), H = config_.heads, D = config_.head_dim();
  struct Stream {
    int64_t row0, len;
    Tensor mod;                                          // [6, d]
    const char *mod_name, *q, *k, *v, *norm_q, *norm_k;  // weight names of the stream
    const char *out, *mlp;
  };
  const Stream streams[2] = {
      {0, b.txt_len, b.mod_txt, "txt_mod.1", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj",
       "attn.norm_added_q", "attn.norm_added_k", "attn.to_add_out", "txt_mlp"},
      {b.txt_len, b.img_len, b.mod_img, "img_mod.1", "attn.to_q", "attn.to_k", "attn.to_v", "attn.norm_q",
       "attn.norm_k", "attn.to_out.0", "img_mlp"},
  };
  for (const Stream& s : streams) {
    linear(p + s.mod_name, b.vec_silu, s.mod.reshape({6 * d}));
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    const Tensor qkv = b.qkv.rows(s.row0, s.len);  // [len, 3d]
    backend_.norm_modulate(x, s.mod.rows(0, 1), s.mod.rows(1, 1), kNormEps, normed);
    linear(p + s.q, normed, qkv.cols(0, d));
    linear(p + s.k, normed, qkv.cols(d, d));
    linear(p + s.v, normed, qkv.cols(2 * d, d));
    const Tensor cos = b.rope_cos.rows(s.row0, s.len), sin = b.rope_sin.rows(s.row0, s.len);
    backend_.rms_norm_rope(qkv.cols(0, d).reshape({s.len, H, D}), w(p + s.norm_q + ".weight"), kNormEps, cos, sin,
                           b.q.rows(s.row0, s.len));
    backend_.rms_norm_rope(qkv.cols(d, d).reshape({s.len, H, D}), w(p + s.norm_k + ".weight"), kNormEps, cos, sin,
                           b.k.rows(s.row0, s.len));
  }
  attention_->attend(backend_, b.q, b.k, b.qkv.cols(2 * d, d).reshape({n, H, D}), b.attn.reshape({n, H, D}));
  for (const Stream& s : streams) {
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    const Tensor hidden = b.hidden.rows(s.row0, s.len);
    const Tensor gate1 = s.mod.rows(2, 1), gate2 = s.mod.rows(5, 1);
    const std::string mlp = p + s.mlp;
    linear(p + s.out, b.attn.rows(s.row0, s.len), x, Epilogue::gated_residual, &gate1);
    backend_.norm_modulate(x, s.mod.rows(3, 1), s.mod.rows(4, 1), kNormEps, normed);
    linear(mlp + ".net.0.proj", normed, hidden, Epilogue::gelu_tanh);
    linear(mlp + ".net.2", hidden, x, Epilogue::gated_residual, &gate2);
  }
}

void QwenImageTransformer::forward(const Tensor& tokens, const Tensor& scalars, const Tensor& velocity) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(b.shard.count() > 0, "forward before set_condition");
  FRESCO_ASSERT(tokens.dim(0) == b.img_len && tokens.dim(1) == config_.in_channels,
                "forward: tokens " + tokens.describe() + " do not match the condition's grid");
  FRESCO_ASSERT(velocity.dim(0) == b.img_len && velocity.dim(1) == config_.out_token_channels(),
                "forward: velocity " + velocity.describe());
  FRESCO_ASSERT(scalars.numel() == 2 && scalars.dtype() == DType::f32, "forward: scalars " + scalars.describe());
  attention_->begin_forward();
  // c = SiLU(linear_2(SiLU(linear_1(sinusoid(1000 t))))): the one conditioning vector.
  const std::string te = "time_text_embed.timestep_embedder.";
  backend_.timestep_embedding(scalars.rows(0, 1), b.temb);
  linear(te + "linear_1", b.temb, b.embed_hidden);
  backend_.silu(b.embed_hidden, b.embed_hidden);
  linear(te + "linear_2", b.embed_hidden, b.vec);
  backend_.silu(b.vec, b.vec_silu);
  // x0 = [txt_in rows; img_in(tokens)]
  backend_.copy(tokens, b.img_tokens);
  backend_.copy(b.txt_embedded, b.x.rows(0, b.txt_len));
  linear("img_in", b.img_tokens, b.x.rows(b.txt_len, b.img_len));
  for (int i = 0; i < config_.layers; ++i) block(i);
  // norm_out (AdaLayerNormContinuous): chunks scale, then shift; then proj_out on the image rows.
  const int64_t d = config_.hidden;
  linear("norm_out.linear", b.vec_silu, b.mod_out.reshape({2 * d}));
  const Tensor normed = b.normed.rows(b.txt_len, b.img_len);
  backend_.norm_modulate(b.x.rows(b.txt_len, b.img_len), b.mod_out.rows(1, 1), b.mod_out.rows(0, 1), kNormEps,
                         normed);
  linear("proj_out", normed, velocity);
  attention_->end_forward(backend_);
}

void QwenImageTransformer::set_step_cache(const StepCacheLayout& layout) {
  if (layout.signal != CacheSignal::none) throw not_yet("step caching (--cache)");
}
void QwenImageTransformer::forward_head(const Tensor&, const Tensor&) { throw not_yet("step caching (--cache)"); }
void QwenImageTransformer::forward_tail(const Tensor&, bool) { throw not_yet("step caching (--cache)"); }
const Tensor& QwenImageTransformer::cache_sums() const { return no_cache_sums_; }
void QwenImageTransformer::use_fp8_linears() { throw not_yet("--dtype fp8"); }

}  // namespace fresco
