#include "src/model/flux_model.hpp"

#include <algorithm>

#include "src/core/error.hpp"
#include "src/model/rope.hpp"

namespace fresco {

namespace {
constexpr float kNormEps = 1e-6f;
constexpr int kTimeEmbedWidth = 256;
}  // namespace

// Activation buffers for one shard. n = rows of the shard (text rows first, then image rows),
// d hidden, m MLP width; nt/ni = text/image rows of the shard.
struct FluxTransformer::Buffers {
  SequenceShard shard;
  int64_t txt_len = 0, img_len = 0;  // rows of the shard: nt and ni
  Tensor txt_embedded;  // [nt, d]     txt_in(txt rows), fixed for the image
  Tensor y_embedded;    // [d]         vector_in(y), fixed for the image
  Tensor rope_cos;      // [n, D/2]    angles of each row's true position ids
  Tensor rope_sin;      // [n, D/2]
  Tensor temb;          // [256]
  Tensor embed_hidden;  // [d]
  Tensor embed_out;     // [d]
  Tensor vec;           // [d]         conditioning vector
  Tensor vec_silu;      // [d]
  Tensor mod;           // [6, d]      modulation chunks (shift, scale, gate, ...)
  Tensor mod_txt;       // [6, d]
  Tensor x;             // [n, d]      residual stream, text rows first
  Tensor normed;        // [n, d]
  Tensor qkv;           // [n, 3d]
  Tensor q, k, v;       // [n, H, D]
  Tensor attn;          // [n, H, D]
  Tensor proj;          // [n, d]
  Tensor mlp_hidden;    // [n, m]
  Tensor fused;         // [n, 3d + m] single-block linear1 output
  Tensor concat;        // [n, d + m]  single-block linear2 input
  Tensor img_in;        // [ni, d]
};

FluxTransformer::FluxTransformer(FluxConfig config, ModelWeights weights, Backend& backend,
                                 std::unique_ptr<AttentionStrategy> attention)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      backend_(backend),
      attention_(std::move(attention)),
      buf_(std::make_unique<Buffers>()) {}

FluxTransformer::~FluxTransformer() = default;
FluxTransformer::FluxTransformer(FluxTransformer&&) noexcept = default;

void FluxTransformer::linear(const std::string& name, const Tensor& x, const Tensor& y) {
  const Tensor& bias = w(name + ".bias");
  backend_.linear(x, w(name + ".weight"), &bias, y);
}

void FluxTransformer::norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                    const Tensor& out) {
  backend_.layer_norm(x, kNormEps, out);
  backend_.modulate(out, shift, scale, out);
}

void FluxTransformer::set_condition(const Tensor& txt, const Tensor& y, int64_t grid_h,
                                    int64_t grid_w, const std::vector<SequenceShard>& shards,
                                    int position) {
  const FluxConfig& c = config_;
  const int64_t d = c.hidden, H = c.heads, D = c.head_dim(), m = c.mlp_hidden();
  FRESCO_ASSERT(txt.rank() == 2 && txt.dim(1) == c.context_in_dim && y.numel() == c.vec_in_dim,
                "set_condition: txt " + txt.describe() + " / y " + y.describe());
  const std::vector<SequenceShard> all =
      shards.empty() ? std::vector{SequenceShard::whole(txt.dim(0), grid_h * grid_w)} : shards;
  FRESCO_ASSERT(position >= 0 && position < int(all.size()), "set_condition: position");
  const SequenceShard sh = all[size_t(position)];
  FRESCO_ASSERT(sh.txt_len == txt.dim(0) && sh.img_len == grid_h * grid_w &&
                    sh.txt_begin + sh.txt_count <= sh.txt_len && sh.img_start + sh.img_count <= sh.img_len,
                "set_condition: shard does not fit the sequence");
  const int64_t n = sh.count(), nt = sh.txt_rows(), ni = sh.img_rows();
  Buffers& b = *buf_;
  if (b.txt_len != nt || b.img_len != ni) {
    auto alloc = [&](Shape s) { return backend_.alloc(s, DType::f32); };
    b.txt_len = nt;
    b.img_len = ni;
    b.txt_embedded = alloc({nt, d});
    b.y_embedded = alloc({d});
    b.temb = alloc({kTimeEmbedWidth});
    b.embed_hidden = alloc({d});
    b.embed_out = alloc({d});
    b.vec = alloc({d});
    b.vec_silu = alloc({d});
    b.mod = alloc({6, d});
    b.mod_txt = alloc({6, d});
    b.x = alloc({n, d});
    b.normed = alloc({n, d});
    b.qkv = alloc({n, 3 * d});
    b.q = alloc({n, H, D});
    b.k = alloc({n, H, D});
    b.v = alloc({n, H, D});
    b.attn = alloc({n, H, D});
    b.proj = alloc({n, d});
    b.mlp_hidden = alloc({n, m});
    b.fused = alloc({n, 3 * d + m});
    b.concat = alloc({n, d + m});
    b.img_in = alloc({ni, d});
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
  b.rope_cos = backend_.upload(rope.cos);
  b.rope_sin = backend_.upload(rope.sin);

  // txt = txt_in(txt rows of the shard); vector_in(y) = out_layer(silu(in_layer(y)))
  linear("txt_in", backend_.upload(txt.rows(sh.txt_begin, nt)), b.txt_embedded);
  linear("vector_in.in_layer", backend_.upload(y), b.embed_hidden);
  backend_.silu(b.embed_hidden, b.embed_hidden);
  linear("vector_in.out_layer", b.embed_hidden, b.y_embedded);
}

const SequenceShard& FluxTransformer::shard() const { return buf_->shard; }

void FluxTransformer::embed_vector(float t, float guidance) {
  // vec = time_in(temb(t)) [+ guidance_in(temb(g))] + vector_in(y)
  Buffers& b = *buf_;
  auto mlp_embed = [&](const std::string& prefix, float s, const Tensor& acc) {
    backend_.timestep_embedding(s, b.temb);
    linear(prefix + ".in_layer", b.temb, b.embed_hidden);
    backend_.silu(b.embed_hidden, b.embed_hidden);
    linear(prefix + ".out_layer", b.embed_hidden, b.embed_out);
    backend_.add(acc, b.embed_out, acc);
  };
  backend_.concat_rows(std::span<const Tensor>(&b.y_embedded, 1), b.vec);  // vec = y_emb
  mlp_embed("time_in", t, b.vec);
  if (config_.guidance_embed) mlp_embed("guidance_in", guidance, b.vec);
  backend_.silu(b.vec, b.vec_silu);
}

void FluxTransformer::scatter_qkv(const Tensor& qkv, int64_t row0,
                                  const std::string& norm_prefix) {
  // qkv: [Ls, >= 3d] with columns q | k | v (each head-major, then D)
  Buffers& b = *buf_;
  const int64_t Ls = qkv.dim(0), d = config_.hidden;
  const Tensor q = b.q.rows(row0, Ls), k = b.k.rows(row0, Ls), v = b.v.rows(row0, Ls);
  backend_.copy_columns(qkv, 0, q);
  backend_.copy_columns(qkv, d, k);
  backend_.copy_columns(qkv, 2 * d, v);
  backend_.rms_norm_heads(q, w(norm_prefix + ".norm.query_norm.scale"), kNormEps, q);
  backend_.rms_norm_heads(k, w(norm_prefix + ".norm.key_norm.scale"), kNormEps, k);
}

void FluxTransformer::apply_rope_and_attend() {
  Buffers& b = *buf_;
  backend_.rope(b.q, b.rope_cos, b.rope_sin, b.q);
  backend_.rope(b.k, b.rope_cos, b.rope_sin, b.k);
  attention_->attend(backend_, b.q, b.k, b.v, b.attn);
}

void FluxTransformer::double_block(int index) {
  Buffers& b = *buf_;
  const std::string p = "double_blocks." + std::to_string(index) + ".";
  const int64_t d = config_.hidden;
  struct Stream {
    const char* name;
    int64_t row0, len;
    Tensor mod;  // [6, d]: shift1, scale1, gate1, shift2, scale2, gate2
  };
  const Stream streams[2] = {{"txt", 0, b.txt_len, b.mod_txt}, {"img", b.txt_len, b.img_len, b.mod}};

  for (const Stream& s : streams) {
    const std::string sp = p + s.name;
    linear(sp + "_mod.lin", b.vec_silu, s.mod.reshape({6 * d}));
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    norm_modulate(x, s.mod.rows(0, 1), s.mod.rows(1, 1), normed);
    const Tensor qkv = b.qkv.rows(s.row0, s.len);
    linear(sp + "_attn.qkv", normed, qkv);
    scatter_qkv(qkv, s.row0, sp + "_attn");
  }
  apply_rope_and_attend();
  for (const Stream& s : streams) {
    const std::string sp = p + s.name;
    const Tensor x = b.x.rows(s.row0, s.len), normed = b.normed.rows(s.row0, s.len);
    const Tensor proj = b.proj.rows(s.row0, s.len), hidden = b.mlp_hidden.rows(s.row0, s.len);
    linear(sp + "_attn.proj", b.attn.rows(s.row0, s.len).reshape({s.len, d}), proj);
    backend_.gated_residual(x, s.mod.rows(2, 1), proj);
    norm_modulate(x, s.mod.rows(3, 1), s.mod.rows(4, 1), normed);
    linear(sp + "_mlp.0", normed, hidden);
    backend_.gelu_tanh(hidden, hidden);
    linear(sp + "_mlp.2", hidden, proj);
    backend_.gated_residual(x, s.mod.rows(5, 1), proj);
  }
}

void FluxTransformer::single_block(int index) {
  Buffers& b = *buf_;
  const std::string p = "single_blocks." + std::to_string(index);
  const int64_t d = config_.hidden, L = b.x.dim(0);  // L: rows of this shard
  const Tensor mod = b.mod.rows(0, 3);  // [3, d]: shift, scale, gate
  linear(p + ".modulation.lin", b.vec_silu, mod.reshape({3 * d}));
  norm_modulate(b.x, mod.rows(0, 1), mod.rows(1, 1), b.normed);
  linear(p + ".linear1", b.normed, b.fused);  // [L, 3d + m] = qkv | mlp
  scatter_qkv(b.fused, 0, p);
  apply_rope_and_attend();
  backend_.paste_columns(b.attn.reshape({L, d}), b.concat, 0);
  backend_.copy_columns(b.fused, 3 * d, b.mlp_hidden);
  backend_.gelu_tanh(b.mlp_hidden, b.mlp_hidden);
  backend_.paste_columns(b.mlp_hidden, b.concat, d);
  linear(p + ".linear2", b.concat, b.proj);
  backend_.gated_residual(b.x, mod.rows(2, 1), b.proj);
}

void FluxTransformer::final_layer(const Tensor& velocity) {
  Buffers& b = *buf_;
  const int64_t d = config_.hidden;
  const Tensor mod = b.mod.rows(0, 2);  // [2, d]: shift, scale
  linear("final_layer.adaLN_modulation.1", b.vec_silu, mod.reshape({2 * d}));
  const Tensor normed = b.normed.rows(b.txt_len, b.img_len);
  norm_modulate(b.x.rows(b.txt_len, b.img_len), mod.rows(0, 1), mod.rows(1, 1), normed);
  linear("final_layer.linear", normed, velocity);
}

void FluxTransformer::forward(const Tensor& img, float t, float guidance, const Tensor& velocity) {
  Buffers& b = *buf_;
  FRESCO_ASSERT(b.shard.count() > 0, "forward before set_condition");
  FRESCO_ASSERT(img.dim(0) == b.img_len && img.dim(1) == config_.in_channels,
                "forward: img " + img.describe() + " does not match the condition's grid");
  attention_->begin_forward();
  embed_vector(t, guidance);
  linear("img_in", img, b.img_in);
  const Tensor parts[2] = {b.txt_embedded, b.img_in};
  backend_.concat_rows(parts, b.x);
  for (int i = 0; i < config_.depth; ++i) double_block(i);
  for (int i = 0; i < config_.depth_single; ++i) single_block(i);
  final_layer(velocity);
}

}  // namespace fresco
