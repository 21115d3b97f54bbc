// The FLUX.1 transformer (spec: ../shared/spec/flux-transformer.md) on any Backend.
//
// Usage per image: set_condition(txt, y, grid, shard) once (embeds the text, fills the RoPE
// tables; allocates the activation buffers from one arena only when the shard's shape changes,
// so their addresses stay fixed across images), then forward(img, scalars, velocity) once per
// denoising step with no allocation. A rank holds one shard of the joint sequence cat(txt, img)
// (the whole sequence on one rank); everything but the attention is row-local, and the joint
// attention goes through an AttentionStrategy (src/model/hooks.hpp), so the sequence-parallel
// plans (mpi/plans/) replace it without touching the block code.
//
// Activations are in the compute dtype (f32, or bf16 as on the GPU) and weights in their stored
// dtype; the fused ops (norm_modulate, rms_norm_rope, linear epilogues) round once where a GPU
// kernel stores. q and k come from the qkv rows through rms_norm_rope; v is read in place from
// the qkv rows, and the single block's attention writes straight into its concat buffer.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/hooks.hpp"

namespace fresco {

// The spec (denoiser.hpp) of a FLUX preset.
DenoiserSpec flux_denoiser_spec(const FluxConfig& config);

class FluxTransformer final : public Denoiser {
 public:
  const std::string& weights_identity() const override { return weights_.identity(); }
  const DenoiserSpec& spec() const override { return spec_; }
  uint64_t buffers_epoch() const override;

  FluxTransformer(FluxConfig config, ModelWeights weights, Backend& backend,
                  std::unique_ptr<AttentionStrategy> attention = std::make_unique<LocalAttention>(),
                  DType compute = DType::f32);
  ~FluxTransformer() override;
  FluxTransformer(FluxTransformer&&) noexcept;

  // The ops a forward runs, as OpDescs for a backend's supports(): activations in `compute`,
  // weights in `weight`. The constructor refuses a backend that lacks one (ComputeError).
  static std::vector<OpDesc> ops_needed(DType compute, DType weight);

  const FluxConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  const AttentionStrategy& attention() const override { return *attention_; }
  // The attention's step state (AttentionStrategy::set_step): the step the next forward computes.
  void set_step(int step) override {
    step_ = step;
    attention_->set_step(step);
  }
  DType compute_dtype() const { return compute_; }

  // txt: [Ltxt, context_in_dim] (the whole prompt), y: [vec_in_dim] (host tensors); the image
  // is a grid_h x grid_w grid of packed tokens. `shards` lists the rows of cat(txt, img) held
  // by each rank of the group and `position` is this rank's (default: one rank holds all).
  void set_condition(const Tensor& txt, const Tensor& y, int64_t grid_h, int64_t grid_w,
                     const std::vector<SequenceShard>& shards = {}, int position = 0);
  void set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                     const std::vector<SequenceShard>& shards, int position) override {
    set_condition(condition.txt, condition.y, grid_h, grid_w, shards, position);
  }
  const SequenceShard& shard() const;
  // img: [shard.img_rows(), in_channels] this rank's packed image tokens (any float dtype);
  // scalars: [2] f32 (t, guidance) on the backend's device, read by the step's ops, so a
  // captured step replays with new values; velocity: [shard.img_rows(), in_channels] (any
  // float dtype). Device tensors; allocates nothing.
  void forward(const Tensor& img, const Tensor& scalars, const Tensor& velocity) override;
  // Convenience for one-off forwards (tests, `fresco forward`): stages t and guidance into the
  // model's own device scalars, then runs the forward above.
  void forward(const Tensor& img, float t, float guidance, const Tensor& velocity);

  // Step caching (denoiser.hpp, docs/step-cache.md). The blocks are the double blocks, then the
  // single blocks; block i runs attention layer i.
  void set_step_cache(const StepCacheLayout& layout) override;
  void forward_head(const Tensor& img, const Tensor& scalars) override;
  void forward_tail(const Tensor& velocity, bool use_cache) override;
  const Tensor& cache_sums() const override;

  // The token linears (every block's qkv, proj, MLP, linear1 and linear2, both streams) in e4m3.
  void use_fp8_linears() override;
  bool fp8_linears() const override { return !fp8_.empty(); }
  void set_fp8_active(bool active) override { fp8_active_ = active; }
  void use_fp8_attention() override;
  bool fp8_attention() const override { return fp8_attention_; }
  // The checkpoint names of those linears' weights ("double_blocks.0.img_attn.qkv", ...).
  std::vector<std::string> token_linear_names() const;

 private:
  struct Buffers;  // activations of one sequence layout, from one arena (set_condition)
  void embed_vector(const Tensor& scalars);
  // The embeddings and x⁰ = [txt_in rows; img_in(img)] (the start of every forward).
  void begin(const Tensor& img, const Tensor& scalars);
  void block(int index);  // double blocks first, then single blocks
  void double_block(int index);
  void single_block(int index);
  void final_layer(const Tensor& velocity);
  // rms_norm_rope of q and k of rows [row0, row0 + qkv.dim(0)) from their qkv columns.
  void norm_rope_qk(const Tensor& qkv, int64_t row0, const std::string& norm_prefix);
  // The attention plan over q, k, v into o ([n, H, D] each), at the precision of this step.
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o);
  void linear(const std::string& name, const Tensor& x, const Tensor& y,
              Epilogue epilogue = Epilogue::none, const Tensor* gate = nullptr);
  // A token linear's input: x itself, and with FP8 its rows quantized (e4m3 and one f32 scale per
  // row, in the step's quantization buffers: valid until the next quantize).
  struct TokenInput {
    Tensor x;
    Tensor q, scale;  // defined with FP8 only
  };
  TokenInput quantize(const Tensor& x);
  // x with the quantization buffers' views of its shape (rows of act_q, act_scale), not yet filled.
  TokenInput quantized_input(const Tensor& x) const;
  // y = norm_modulate(x) as a token linear's input: into `normed`, or with FP8 straight into the
  // quantization buffers (one pass; `normed` is not written).
  TokenInput norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& normed);
  // y = epilogue(in · W[rows]^T + b[rows]) of weight `name`'s output channels [row0, row0 + count)
  // (count -1: all): the bf16 linear, or with FP8 the e4m3 product of the quantized input.
  void token_linear(const std::string& name, const TokenInput& in, const Tensor& y, Epilogue epilogue = Epilogue::none,
                    const Tensor* gate = nullptr, int64_t row0 = 0, int64_t count = -1);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  FluxConfig config_;
  DenoiserSpec spec_;
  ModelWeights weights_;
  Backend& backend_;
  std::unique_ptr<AttentionStrategy> attention_;
  DType compute_;
  StepCacheLayout cache_;
  int step_ = 0;  // set_step's: the step the next forward computes
  std::unique_ptr<Buffers> buf_;
  struct Fp8Weight {
    Tensor q;      // [N, K] e4m3
    Tensor scale;  // [N] f32: per output channel, W ≈ q * scale
  };
  std::map<std::string, Fp8Weight> fp8_;  // by linear name; empty unless use_fp8_linears()
  bool fp8_active_ = true;                // set_fp8_active
  bool fp8_attention_ = false;            // use_fp8_attention
  bool fp8_now() const { return fp8_active_ && fp8_linears(); }
};

}  // namespace fresco
