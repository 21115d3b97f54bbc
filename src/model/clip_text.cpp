#include "src/model/clip_text.hpp"

#include <cmath>
#include <string>

#include "src/core/error.hpp"

namespace fresco {

ClipTextEncoder::ClipTextEncoder(ClipTextConfig config, ModelWeights weights, Backend& backend, DType compute)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(backend), compute_(compute) {
  require_encoder_dtype(compute, "the CLIP text encoder");
  ones_ = constant_vector(backend_, config_.width, compute_, 1.0f);
}

void ClipTextEncoder::prepare(int64_t L) {
  if (L == length_) return;
  const int64_t d = config_.width;
  for (Tensor* t : {&x_, &normed_, &q_, &k_, &v_, &o_, &out_}) *t = backend_.alloc({L, d}, compute_);
  hidden_mlp_ = backend_.alloc({L, config_.mlp}, compute_);
  length_ = L;
}

ClipTextOutput ClipTextEncoder::encode(std::span<const int32_t> ids, int64_t eot) {
  const int64_t L = int64_t(ids.size());
  require_input(L > 0 && L <= config_.positions, "CLIP text encoder: " + std::to_string(L) + " tokens, " +
                                                     config_.name + " takes 1 to " +
                                                     std::to_string(config_.positions));
  require_input(eot >= 0 && eot < L, "CLIP text encoder: end-of-text position " + std::to_string(eot) +
                                         " outside the " + std::to_string(L) + " tokens");
  const Tensor& ids_dev = ids_.upload(ids, config_.vocab, "CLIP text encoder " + config_.name, backend_);
  prepare(L);

  const int64_t H = config_.heads, dh = config_.head_dim();
  const float eps = config_.eps, scale = float(1.0 / std::sqrt(double(dh)));
  Backend& be = backend_;
  const auto bias = [this](const std::string& linear) { return &w(linear + ".bias"); };
  be.gather_rows(w("text_model.embeddings.token_embedding.weight"), ids_dev, x_);
  be.add(x_, w("text_model.embeddings.position_embedding.weight").rows(0, L), x_);  // positions 0..L-1
  for (int n = 0; n < config_.layers; ++n) {
    const std::string p = "text_model.encoder.layers." + std::to_string(n) + ".";
    // Causal self-attention: x += out_proj(softmax(q k^T / sqrt(dh), causal) v).
    be.layer_norm_affine(x_, w(p + "layer_norm1.weight"), w(p + "layer_norm1.bias"), eps, normed_);
    be.linear(normed_, w(p + "self_attn.q_proj.weight"), bias(p + "self_attn.q_proj"), q_);
    be.linear(normed_, w(p + "self_attn.k_proj.weight"), bias(p + "self_attn.k_proj"), k_);
    be.linear(normed_, w(p + "self_attn.v_proj.weight"), bias(p + "self_attn.v_proj"), v_);
    be.attention_bias(q_.reshape({L, H, dh}), k_.reshape({L, H, dh}), v_.reshape({L, H, dh}), nullptr,
                      /*causal=*/true, scale, o_.reshape({L, H, dh}));
    be.linear(o_, w(p + "self_attn.out_proj.weight"), bias(p + "self_attn.out_proj"), x_, Epilogue::gated_residual,
              &ones_);
    // MLP: x += fc2(quick_gelu(fc1 a)).
    be.layer_norm_affine(x_, w(p + "layer_norm2.weight"), w(p + "layer_norm2.bias"), eps, normed_);
    be.linear(normed_, w(p + "mlp.fc1.weight"), bias(p + "mlp.fc1"), hidden_mlp_);
    be.quick_gelu(hidden_mlp_, hidden_mlp_);
    be.linear(hidden_mlp_, w(p + "mlp.fc2.weight"), bias(p + "mlp.fc2"), x_, Epilogue::gated_residual, &ones_);
  }
  be.layer_norm_affine(x_, w("text_model.final_layer_norm.weight"), w("text_model.final_layer_norm.bias"), eps, out_);
  return {out_, out_.rows(eot, 1).reshape({config_.width})};
}

}  // namespace fresco
