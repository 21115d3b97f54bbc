// The T5 v1.1 encoder as FLUX.1 runs it (docs/text-encoders.md "T5-XXL v1.1 encoder"): token
// ids in, the last hidden state out, on any Backend, with no attention mask (the pipelines pass
// none: padding tokens are encoded like the others).
//
// Activations are [L, ...] in the compute dtype (f32 or bf16; weights in their stored dtype);
// the position bias [H, L, L] is f32 and depends on L only, so it is built once per length.
// Buffers are allocated for a length and reused while it stays: encode() of the same length
// allocates nothing.
#pragma once

#include <cstdint>
#include <span>

#include "src/backend/backend.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/text_encoder_config.hpp"
#include "src/model/token_ids.hpp"

namespace fresco {

class T5Encoder {
 public:
  T5Encoder(T5Config config, ModelWeights weights, Backend& backend, DType compute = DType::f32);
  const T5Config& config() const { return config_; }
  DType compute_dtype() const { return compute_; }
  const std::string& weights_identity() const { return weights_.identity(); }

  // ids: token ids [L] (L >= 1, each in [0, vocab): InputError otherwise). Returns the last
  // hidden state [L, d_model] on the backend's device in the compute dtype, valid until the next
  // encode().
  Tensor encode(std::span<const int32_t> ids);

 private:
  void prepare(int64_t L);  // buffers and position bias for L tokens
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  T5Config config_;
  ModelWeights weights_;
  Backend& backend_;
  DType compute_;
  int64_t length_ = -1;  // the length the buffers are for
  DeviceTokenIds ids_;   // [L] i64 on the device
  Tensor bias_;          // [H, L, L] f32   the relative position bias of every layer
  Tensor ones_;          // [d]             the gate of the residual adds (linear's epilogue)
  Tensor x_;             // [L, d]          the residual stream
  Tensor normed_;        // [L, d]          rms(x) * g
  Tensor q_, k_, v_, o_; // [L, H * dk]     attention
  Tensor gate_, up_;     // [L, d_ff]       gelu_tanh(wi_0 a), wi_1 a
  Tensor out_;           // [L, d]          the final norm's output
};

}  // namespace fresco
