// The CLIP ViT-L/14 text model as FLUX.1 runs it (docs/text-encoders.md "CLIP ViT-L/14 text
// model"): token ids in, the final-normed hidden states and the pooled vector (the hidden state
// at the end-of-text token) out, on any Backend, with the causal mask and no other.
//
// Activations are [L, width] in the compute dtype (f32 or bf16; weights in their stored dtype).
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

struct ClipTextOutput {
  Tensor hidden;  // [L, width]  last_hidden_state (after the final LayerNorm)
  Tensor pooled;  // [width]     hidden[eot]: FLUX's `vec`
};

class ClipTextEncoder {
 public:
  ClipTextEncoder(ClipTextConfig config, ModelWeights weights, Backend& backend, DType compute = DType::f32);
  const ClipTextConfig& config() const { return config_; }
  DType compute_dtype() const { return compute_; }
  const std::string& weights_identity() const { return weights_.identity(); }

  // ids: token ids [L] (1 <= L <= positions, each in [0, vocab)); eot: the position of the first
  // end-of-text token (ClipTokens::eot_index), where the pooled output is taken. InputError for
  // anything else. The outputs are views of the encoder's buffers on the backend's device, valid
  // until the next encode().
  ClipTextOutput encode(std::span<const int32_t> ids, int64_t eot);

 private:
  void prepare(int64_t L);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  ClipTextConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  DType compute_;
  int64_t length_ = -1;
  DeviceTokenIds ids_;    // [L] i64 on the device
  Tensor ones_;           // [width]      the gate of the residual adds
  Tensor x_;              // [L, width]   the residual stream
  Tensor normed_;         // [L, width]   LayerNorm output
  Tensor q_, k_, v_, o_;  // [L, width]   attention
  Tensor hidden_mlp_;     // [L, mlp]     quick_gelu(fc1 a)
  Tensor out_;            // [L, width]   the final LayerNorm's output
};

}  // namespace fresco
