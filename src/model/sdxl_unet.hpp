// The SDXL base U-Net (docs/sdxl.md) on any Backend, f32 or bf16 activations, behind the
// model-family seam (denoiser.hpp).
//
// The seam's tokens are the latent's pixels in row-major order, four channels each
// (latent_patch 1): forward() transposes them to the channel-major latent [4, h, w], runs the
// network on channel-major activations [C, h, w] (convolutions, GroupNorm) and token-major ones
// [h w, C] (the transformer blocks), and transposes ε back. With a negative prompt, forward()
// runs both branches one after the other and returns the guided ε_u + g (ε_c − ε_u), g being the
// step's device scalar, so a step stays one forward of the seam.
//
// One rank holds the whole latent (the patch-parallel U-Net is a later step, docs/sdxl.md).
// Memory: set_condition lays out every activation for the latent's shape (the skips, two
// ping-pong buffers and the scratch of the largest level); forward() allocates nothing.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"
#include "src/model/sdxl_config.hpp"

namespace fresco {

DenoiserSpec sdxl_denoiser_spec(const SdxlConfig& config);

class SdxlUnet final : public Denoiser {
 public:
  SdxlUnet(SdxlConfig config, ModelWeights weights, Backend& backend,
           std::unique_ptr<AttentionStrategy> attention = std::make_unique<LocalAttention>(),
           DType compute = DType::f32);
  ~SdxlUnet() override;

  const SdxlConfig& config() const { return config_; }
  const DenoiserSpec& spec() const override { return spec_; }
  const std::string& weights_identity() const override { return weights_.identity(); }
  const AttentionStrategy& attention() const override { return *attention_; }
  void set_step(int step) override { attention_->set_step(step); }
  uint64_t buffers_epoch() const override { return epoch_; }

  // condition: txt [Ltxt, context_dim], y [pooled_dim], size_cond [6], and optionally the
  // negative prompt's txt and y (host tensors); grid_h x grid_w: the latent's pixels (multiples
  // of config().latent_multiple()). One shard: the whole image on this rank.
  void set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                     const std::vector<SequenceShard>& shards, int position) override;
  // tokens: [h w, 4] the model input x_t (any float dtype); scalars: [2] f32 on the device,
  // (t / 1000, guidance) with t the diffusion timestep (0..999); eps: [h w, 4] (any float
  // dtype), the predicted noise (guided when a negative prompt was given).
  void forward(const Tensor& tokens, const Tensor& scalars, const Tensor& eps) override;

  // Step caching and FP8 linears are the FLUX transformer's: refused (InputError).
  void set_step_cache(const StepCacheLayout& layout) override;
  void forward_head(const Tensor& tokens, const Tensor& scalars) override;
  void forward_tail(const Tensor& velocity, bool use_cache) override;
  const Tensor& cache_sums() const override { return no_cache_sums_; }
  void use_fp8_linears() override;
  bool fp8_linears() const override { return false; }
  void set_fp8_active(bool) override {}

 private:
  struct Branch {    // one prompt's per-image conditioning on the device
    Tensor context;  // [Ltxt, context_dim] compute dtype
    Tensor add_emb;  // [1, time_embed_dim]  e_add
  };
  void lay_out(int64_t h, int64_t w, int64_t txt_tokens);
  Branch embed_branch(const Tensor& txt, const Tensor& pooled, const Tensor& size_cond);
  // The network on latent_ ([4, h, w]) for one branch, ε into out [4, h, w].
  void run_branch(const Branch& branch, const Tensor& out);
  void time_embedding(const Tensor& t);
  void group_norm(const std::string& name, const Tensor& x, float eps, const Tensor& y);
  // x: [C_in, h, w] -> out: [C_out, h, w] (out must not alias x).
  void resnet(const std::string& name, const Tensor& x, const Tensor& out);
  // x: [C, h, w] updated in place: x + proj_out(blocks(proj_in(GN(x)))).
  void transformer(const std::string& name, const Tensor& x, int layers, const Tensor& context);
  void transformer_block(const std::string& name, const Tensor& z, int64_t heads, const Tensor& context);
  // x: [C, h, w] -> out: [C, h/2, w/2], the 3x3 convolution of stride 2.
  void downsample(const std::string& name, const Tensor& x, const Tensor& out);
  // x: [C, h, w] -> out: [C, 2h, 2w], nearest 2x then the 3x3 convolution.
  void upsample(const std::string& name, const Tensor& x, const Tensor& out);
  // out: [Cx + Cs, h, w] = x ‖ skip along the channels.
  void concat(const Tensor& x, const Tensor& skip, const Tensor& out);
  // The first elements of a scratch buffer as a dense tensor of `shape`.
  static Tensor view(const Tensor& buffer, const Shape& shape);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  SdxlConfig config_;
  DenoiserSpec spec_;
  ModelWeights weights_;
  Backend& backend_;
  std::unique_ptr<AttentionStrategy> attention_;
  DType compute_;
  DType bias_dtype_;  // the per-step conv1 biases' dtype (the stored biases', or f32)
  // conv1.bias + time_emb_proj.bias of every resnet: the constant part of its conv1 bias.
  std::map<std::string, Tensor> static_bias_;
  Tensor ones_;           // [max C] the gate of the residual linears
  Tensor no_cache_sums_;  // undefined: no step cache

  // The layout of set_condition's shape.
  int64_t h_ = -1, w_ = -1, txt_ = -1;
  uint64_t epoch_ = 0;
  std::vector<Branch> branches_;  // conditional first, then the negative prompt's
  Tensor tokens_c_;               // [h w, 4] the input tokens in the compute dtype
  Tensor latent_;                 // [4, h, w]
  std::array<Tensor, 2> eps_;     // [4, h, w] per branch
  Tensor eps_tokens_;             // [h w, 4] compute dtype
  std::vector<Tensor> skips_;     // the down path's outputs, [C, h_l, w_l] each
  std::array<Tensor, 2> path_;    // the mid and up path's ping-pong buffers (flat, largest)
  // Flat scratch buffers of the largest size any use needs.
  Tensor concat_, upsampled_, normed_, hidden_, tok_a_, tok_z_, q_, k_, v_, o_, ff_;
  Tensor ctx_k_, ctx_v_;           // [Ltxt max C], flat like the scratch
  Tensor time_proj_;               // [time_proj_dim]
  Tensor e_time_, e_hidden_, e_, e_silu_;  // [1, time_embed_dim]
  Tensor conv_bias_;               // [max C] bias_dtype_
  Tensor sums_;                    // [groups, 2] f64
};

}  // namespace fresco
