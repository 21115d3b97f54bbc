#include "src/model/t5_encoder.hpp"

#include <string>

namespace fresco {

T5Encoder::T5Encoder(T5Config config, ModelWeights weights, Backend& backend, DType compute)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(backend), compute_(compute) {
  require_encoder_dtype(compute, "the T5 encoder");
  ones_ = constant_vector(backend_, config_.d_model, compute_, 1.0f);
}

void T5Encoder::prepare(int64_t L) {
  if (L == length_) return;
  const int64_t d = config_.d_model, H = config_.heads, inner = config_.inner();
  x_ = backend_.alloc({L, d}, compute_);
  normed_ = backend_.alloc({L, d}, compute_);
  out_ = backend_.alloc({L, d}, compute_);
  for (Tensor* t : {&q_, &k_, &v_, &o_}) *t = backend_.alloc({L, inner}, compute_);
  gate_ = backend_.alloc({L, config_.d_ff}, compute_);
  up_ = backend_.alloc({L, config_.d_ff}, compute_);

  // bias[h, i, j] = table[bucket(j - i), h]: the buckets on the host, the table's rows gathered
  // as [L * L, H] and transposed to [H, L * L].
  Tensor buckets({L * L}, DType::i64);  // [L * L]  bucket of (query i, key j) at i * L + j
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j)
      buckets.data<int64_t>()[i * L + j] = t5_relative_bucket(j - i, config_.buckets, config_.max_distance);
  const Tensor buckets_dev = backend_.upload(buckets);
  const Tensor rows = backend_.alloc({L * L, H}, DType::f32);
  backend_.gather_rows(w("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"), buckets_dev, rows);
  bias_ = backend_.alloc({H, L, L}, DType::f32);
  backend_.transpose(rows, bias_.reshape({H, L * L}));
  backend_.synchronize();  // buckets and rows are released here
  length_ = L;
}

Tensor T5Encoder::encode(std::span<const int32_t> ids) {
  const Tensor& ids_dev = ids_.upload(ids, config_.vocab, "T5 encoder " + config_.name, backend_);
  const int64_t L = ids_dev.numel();
  prepare(L);

  const int64_t H = config_.heads, dk = config_.head_dim;
  const float eps = config_.eps;
  Backend& be = backend_;
  be.gather_rows(w("shared.weight"), ids_dev, x_);  // no scaling of the embeddings
  for (int n = 0; n < config_.layers; ++n) {
    const std::string p = "encoder.block." + std::to_string(n) + ".layer.";
    // Self-attention: x += o(softmax(q k^T + bias) v), the scores unscaled.
    be.rms_norm_heads(x_, w(p + "0.layer_norm.weight"), eps, normed_);  // one head: T5's RMS norm
    be.linear(normed_, w(p + "0.SelfAttention.q.weight"), nullptr, q_);
    be.linear(normed_, w(p + "0.SelfAttention.k.weight"), nullptr, k_);
    be.linear(normed_, w(p + "0.SelfAttention.v.weight"), nullptr, v_);
    be.attention_bias(q_.reshape({L, H, dk}), k_.reshape({L, H, dk}), v_.reshape({L, H, dk}), &bias_,
                      /*causal=*/false, 1.0f, o_.reshape({L, H, dk}));
    be.linear(o_, w(p + "0.SelfAttention.o.weight"), nullptr, x_, Epilogue::gated_residual, &ones_);
    // Gated-GELU FFN: x += wo(gelu_tanh(wi_0 a) * wi_1 a).
    be.rms_norm_heads(x_, w(p + "1.layer_norm.weight"), eps, normed_);
    be.linear(normed_, w(p + "1.DenseReluDense.wi_0.weight"), nullptr, gate_, Epilogue::gelu_tanh);
    be.linear(normed_, w(p + "1.DenseReluDense.wi_1.weight"), nullptr, up_);
    be.multiply(gate_, up_, gate_);
    be.linear(gate_, w(p + "1.DenseReluDense.wo.weight"), nullptr, x_, Epilogue::gated_residual, &ones_);
  }
  be.rms_norm_heads(x_, w("encoder.final_layer_norm.weight"), eps, out_);
  return out_;
}

}  // namespace fresco
