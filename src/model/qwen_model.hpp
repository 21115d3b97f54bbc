// The Qwen-Image transformer (docs/qwen-image.md) on any Backend, behind the model seam.
//
// Same life cycle as FluxTransformer: set_condition once per image (normalises and embeds this
// shard's text rows, fills the MSRoPE tables; lays out the activations from one arena only when
// the shard's shape changes), then forward(tokens, scalars, velocity) once per step with no
// allocation. A rank holds one shard of cat(txt, img); the joint attention of every block goes
// through the AttentionStrategy, so the sequence-parallel plans and DistriFusion apply as for
// FLUX. Activations are in the compute dtype, weights in their stored dtype.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/hooks.hpp"
#include "src/model/qwen_config.hpp"

namespace fresco {

// The spec (denoiser.hpp) of a Qwen-Image preset.
DenoiserSpec qwen_denoiser_spec(const QwenConfig& config);

class QwenImageTransformer final : public Denoiser {
 public:
  QwenImageTransformer(QwenConfig config, ModelWeights weights, Backend& backend,
                       std::unique_ptr<AttentionStrategy> attention = std::make_unique<LocalAttention>(),
                       DType compute = DType::f32);
  ~QwenImageTransformer() override;

  // The ops a forward runs (activations in `compute`, weights in `weight`); the constructor
  // refuses a backend that lacks one (ComputeError).
  static std::vector<OpDesc> ops_needed(DType compute, DType weight);

  const DenoiserSpec& spec() const override { return spec_; }
  const std::string& weights_identity() const override { return weights_.identity(); }
  const QwenConfig& config() const { return config_; }
  const AttentionStrategy& attention() const override { return *attention_; }
  void set_step(int step) override { attention_->set_step(step); }
  uint64_t buffers_epoch() const override;

  // condition.txt: [Ltxt, context_in_dim] the prompt's encoder states (host); condition.y is
  // not read (Qwen-Image has no pooled vector). grid_h x grid_w image tokens; `shards` and
  // `position` as for FluxTransformer (empty: one rank holds all).
  void set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                     const std::vector<SequenceShard>& shards, int position) override;
  // tokens: [shard img rows, 64] (any float dtype); scalars: [2] f32 (t, unused) on the device;
  // velocity: [shard img rows, 64]. Allocates nothing.
  void forward(const Tensor& tokens, const Tensor& scalars, const Tensor& velocity) override;

  // Not yet for Qwen-Image: step caching and FP8 linears refuse with a ComputeError (a layout
  // without a cache is accepted: it is every run's default).
  void set_step_cache(const StepCacheLayout& layout) override;
  void forward_head(const Tensor& tokens, const Tensor& scalars) override;
  void forward_tail(const Tensor& velocity, bool use_cache) override;
  const Tensor& cache_sums() const override;
  void use_fp8_linears() override;
  bool fp8_linears() const override { return false; }
  void set_fp8_active(bool) override {}

 private:
  struct Buffers;  // activations of one shard layout, from one arena
  void block(int index);
  void linear(const std::string& name, const Tensor& x, const Tensor& y, Epilogue epilogue = Epilogue::none,
              const Tensor* gate = nullptr);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  QwenConfig config_;
  DenoiserSpec spec_;
  ModelWeights weights_;
  Backend& backend_;
  std::unique_ptr<AttentionStrategy> attention_;
  DType compute_;
  std::unique_ptr<Buffers> buf_;
  Tensor no_cache_sums_;  // cache_sums() of a model without a step cache: undefined
};

}  // namespace fresco
