// The FLUX.1 transformer (spec: ../shared/spec/flux-transformer.md) on any Backend.
//
// Usage per image: set_condition(txt, y, grid, shard) once (embeds the text, builds the RoPE
// tables, allocates every activation buffer), then forward(img, t, g, velocity) once per
// denoising step with no allocation. A rank holds one shard of the joint sequence cat(txt, img)
// (the whole sequence on one rank); everything but the attention is row-local, and the joint
// attention goes through an AttentionStrategy, so the sequence-parallel plans (mpi/) replace
// it without touching the block code.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/sequence_shard.hpp"

namespace fresco {

class AttentionStrategy {
 public:
  virtual ~AttentionStrategy() = default;
  // Called once per image, before its steps: the shards of every rank of the group (in
  // position order) and this rank's position. Allocates what attend() needs.
  virtual void prepare(Backend& /*backend*/, const std::vector<SequenceShard>& /*shards*/,
                       int /*position*/) {}
  // Called at the start of every forward (one per denoising step), before the first attend().
  virtual void begin_forward() {}
  // A line about the strategy's own work since prepare() for the per-image report ("" if none).
  virtual std::string report() const { return ""; }
  // q, k, v: [n, H, D], this rank's shard of the sequence (after QK-norm and RoPE);
  // o: [n, H, D] the attention output of the same rows over the whole sequence.
  virtual void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& o) = 0;
};

// All tokens on this rank: the backend's attention op over the whole joint sequence.
class LocalAttention final : public AttentionStrategy {
 public:
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override {
    backend.attention(q, k, v, o, Tensor());
  }
};

class FluxTransformer {
 public:
  FluxTransformer(FluxConfig config, ModelWeights weights, Backend& backend,
                  std::unique_ptr<AttentionStrategy> attention = std::make_unique<LocalAttention>());
  ~FluxTransformer();
  FluxTransformer(FluxTransformer&&) noexcept;

  const FluxConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  const AttentionStrategy& attention() const { return *attention_; }

  // txt: [Ltxt, context_in_dim] (the whole prompt), y: [vec_in_dim] (host tensors); the image
  // is a grid_h x grid_w grid of packed tokens. `shards` lists the rows of cat(txt, img) held
  // by each rank of the group and `position` is this rank's (default: one rank holds all).
  void set_condition(const Tensor& txt, const Tensor& y, int64_t grid_h, int64_t grid_w,
                     const std::vector<SequenceShard>& shards = {}, int position = 0);
  const SequenceShard& shard() const;
  // img: [shard.img_rows(), in_channels] this rank's packed image tokens;
  // velocity: [shard.img_rows(), in_channels] (device tensors).
  void forward(const Tensor& img, float t, float guidance, const Tensor& velocity);

 private:
  struct Buffers;  // activations of one sequence layout, allocated in set_condition
  void embed_vector(float t, float guidance);
  void double_block(int index);
  void single_block(int index);
  void final_layer(const Tensor& velocity);
  // q/k/v rows of one stream from its fused projection: RMS-normed q, k and plain v.
  void scatter_qkv(const Tensor& qkv, int64_t row0, const std::string& norm_prefix);
  void apply_rope_and_attend();
  void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& out);
  void linear(const std::string& name, const Tensor& x, const Tensor& y);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  FluxConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  std::unique_ptr<AttentionStrategy> attention_;
  std::unique_ptr<Buffers> buf_;
};

}  // namespace fresco
