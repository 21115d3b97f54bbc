// The model-family seam: what the runtime (src/runtime/), the benchmarks and the parallel plans
// need of a denoising model, and nothing of its config. FLUX implements it (flux_model.hpp); a
// U-Net or Qwen-Image implements the same interface and registers in make_denoiser, without
// touching the plans, the transports or the commands (docs/architecture.md, "A new model family").
//
// The runtime's sampler state is a sequence of packed latent tokens [rows, token_channels] f32,
// rows being this rank's image tokens of its shard; one denoising step is forward() (velocity)
// plus the sampler's update, driven by device-resident step scalars (t, guidance, dt).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/core/error.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/hooks.hpp"
#include "src/model/step_flops.hpp"

namespace fresco {

// A preset's shape as seen from outside the model.
struct DenoiserSpec {
  std::string name;               // preset: flux-dev, flux-tiny, ...
  std::string family;             // flux
  AttentionShape attention;       // the joint attention of every layer, for the plans
  int64_t token_channels = 0;     // channels of one packed latent token (FLUX: 16 x 2 x 2 = 64)
  int64_t latent_channels = 0;    // channels of the latent image (FLUX: 16)
  int64_t latent_patch = 2;       // latent pixels per token side
  int blocks = 0;                 // transformer blocks a forward runs in order (step caching)
  int64_t default_steps = 0;
  double default_guidance = 0.0;
  // FLOPs of one forward over txt + img tokens (bench, performance model).
  std::function<StepFlops(int64_t txt_tokens, int64_t img_tokens)> step_flops;
  // The sampler's timesteps t_0 = 1 > ... > t_steps = 0 for an image of img_tokens tokens.
  std::function<std::vector<double>(int steps, int64_t img_tokens)> timesteps;
};

// What a step cache (docs/step-cache.md, runtime/step_cache.hpp) asks of the model: the signal
// its decision measures and the blocks always computed before (head) and after (tail) it.
enum class CacheSignal {
  none,             // no cache: forward() only
  head_residual,    // what the head's blocks added to the image rows (FBCache, DBCache)
  modulated_input,  // the first block's modulated image input (TeaCache; no head blocks)
};
struct StepCacheLayout {
  CacheSignal signal = CacheSignal::none;
  int head_blocks = 0;  // F
  int tail_blocks = 0;  // B
};

// The conditioning of one image: the text encoders' outputs (host tensors).
struct Conditioning {
  Tensor txt;  // [Ltxt, context width]
  Tensor y;    // [pooled width]
  // A model with classifier-free guidance (the SDXL U-Net): the negative prompt's txt and y, or
  // undefined for the conditional prediction alone; and SDXL's six size/crop numbers [6]
  // (docs/sdxl.md). FLUX uses neither.
  Tensor negative_txt{}, negative_y{};
  Tensor size_cond{};
};

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  virtual const DenoiserSpec& spec() const = 0;
  // The loaded weights' identity (ModelWeights::identity), for result records.
  virtual const std::string& weights_identity() const = 0;
  // Once per image: the prompt, the grid of image tokens, every rank's shard of the joint
  // sequence (position order) and this rank's position; prepares the attention's plan.
  virtual void set_condition(const Conditioning& condition, int64_t grid_h, int64_t grid_w,
                             const std::vector<SequenceShard>& shards, int position) = 0;
  // tokens: [shard img rows, token_channels]; scalars: [2] f32 (t, guidance) on the device;
  // velocity: like tokens. Allocates nothing (a step may be captured and replayed).
  virtual void forward(const Tensor& tokens, const Tensor& scalars, const Tensor& velocity) = 0;
  virtual const AttentionStrategy& attention() const = 0;
  // The step the next forward computes (AttentionStrategy::set_step).
  virtual void set_step(int step) = 0;
  // Changes whenever the model lays out new activation buffers (a new shard shape): a step
  // graph captured under another value points at freed buffers.
  virtual uint64_t buffers_epoch() const = 0;

  // Step caching. set_step_cache before set_condition (it lays out the cache's buffers with
  // the activations). A cached run splits each forward in two on the host's decision:
  // forward_head(tokens, scalars) runs the embeddings and the head's blocks and writes the
  // metric's partial sums of this rank's image rows to cache_sums(): [2] f64 on the device,
  // D = Σ|S − P| and R = Σ|P|; forward_tail(velocity, use_cache) then runs the rest of the
  // blocks (keeping their residual) or adds the residual of the last computed step instead,
  // then the tail's blocks and the final layer. Both allocate nothing (each is captured as a
  // graph of its own); forward() stays the uncached forward.
  virtual void set_step_cache(const StepCacheLayout& layout) = 0;
  virtual void forward_head(const Tensor& tokens, const Tensor& scalars) = 0;
  virtual void forward_tail(const Tensor& velocity, bool use_cache) = 0;
  virtual const Tensor& cache_sums() const = 0;

  // FP8 compute (--dtype fp8, docs/performance.md "FP8"): from now on the token linears run on
  // e4m3 operands, each weight quantized here once per output channel and each activation per
  // token in the step; the rest stays in the compute dtype. Before set_condition.
  virtual void use_fp8_linears() = 0;
  virtual bool fp8_linears() const = 0;
  // With FP8 linears: whether the next forwards use them (true) or the bf16 weights (false: the
  // hybrid schedule's bf16 steps, runtime/step_runner.hpp). Host state, baked into a captured step.
  virtual void set_fp8_active(bool active) = 0;
  // FP8 attention (--fp8-attention): from now on the joint attention runs the backend's
  // attention_fp8 (q, k, v and the probabilities in e4m3, one scale per tensor), except in the
  // bf16 steps of the hybrid schedule. Before set_condition. A family without it refuses.
  virtual void use_fp8_attention() {
    throw ComputeError("--fp8-attention is not available for the " + spec().family + " model family");
  }
  virtual bool fp8_attention() const { return false; }
};

// The ops every dual-stream DiT forward here runs (FLUX, Qwen-Image), activations in `compute`,
// weights in `weight`: copies, the linears with their epilogues, norm_modulate, rms_norm_rope,
// the joint attention, silu and the time embedding. Each model adds its own.
std::vector<OpDesc> dit_forward_ops(DType compute, DType weight);

// The registry of model families: the spec of a preset (InputError naming the known ones).
DenoiserSpec denoiser_spec(const std::string& preset);
// The denoiser of a preset with its weights, on `backend`, its attention by `attention`,
// activations in `compute`.
std::unique_ptr<Denoiser> make_denoiser(const std::string& preset, ModelWeights weights, Backend& backend,
                                        std::unique_ptr<AttentionStrategy> attention, DType compute);

}  // namespace fresco
