// DistriFusion's displaced patch parallelism for the joint attention (docs/distrifusion.md).
//
// Each rank of a group holds one patch (a band of image rows plus a share of the text tokens)
// and keeps, per attention layer, a persistent buffer with the K and V of the whole sequence
// (rows in rank order; attention does not depend on the order of its keys).
//  - Warm-up steps (step < W) and --sync-mode full_sync: the fresh K/V of every patch are
//    gathered before the attention, which is then exact.
//  - Displaced steps: the layer's gather started in the previous step is finished, the rank's
//    own rows are replaced by its fresh K/V, the attention runs on that (fresh own patch, stale
//    others), and the gather of the fresh rows into the same buffer is started again.
//    It stays outstanding through the rest of the step (progress is driven by a poll of every
//    pending gather at each attention layer) and is finished only when the next step reads it
//    (or, with join_each_step, at the end of its own step, so that steps can be captured).
// Planning: prepare() lays out every layer's buffers in one arena block and builds one in-place
// all-gather exchange per layer for K and one for V; a later prepare() with the same shards
// reuses both. Memory: 2 * L * d values per layer in the stale dtype, plus, when the stale dtype
// differs from the compute dtype (the dtype of q), one working copy of 2 * L * d in the compute
// dtype shared by all layers (the attention reads one dtype; the rank's own rows stay exact).
#pragma once

#include <memory>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "src/model/hooks.hpp"

namespace fresco {

struct DisplacedOptions {
  int warmup_steps = 4;           // steps computed synchronously (exact) before displacement
  bool full_sync = false;         // every step synchronous: the quality reference
  // Type of the stale K/V buffers: bf16/f16 halve them; e4m3 (FP8 with per-token scales,
  // Backend::quantize_rows) quarters them and the bytes of the gathers.
  DType stale_dtype = DType::f32;
  bool stale_dtype_auto = false;  // --stale-dtype auto: the compute dtype (PlanOptions::set_compute)
  // Displaced gathers complete at the end of the step that started them instead of where the
  // next step reads them: no transfer crosses a step boundary, so a step can be captured and
  // replayed as a graph (GPU ranks over IPC or NCCL). The same data either way; the last
  // layers' gathers are then waited on at the step's end.
  bool join_each_step = false;
};

struct DisplacedStats {
  int64_t posted = 0;       // displaced gathers started (one per layer: K and V)
  int64_t outstanding = 0;  // of those, still in flight when the next attention layer began
};

class DisplacedPatchAttention final : public AttentionStrategy {
 public:
  DisplacedPatchAttention(Communicator& group, int layers, int heads, int head_dim,
                          DisplacedOptions options, DType compute = DType::f32);
  // Gathers still in flight are completed by their exchanges' destructors.
  ~DisplacedPatchAttention() override;

  void prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) override;
  void begin_forward() override;
  void end_forward(Backend& backend) override;
  void set_step(int step) override { step_ = step - 1; }
  // Step caching (docs/step-cache.md): a skipped layer keeps the K/V its buffers hold (its own
  // and the peers' rows of the last step that computed it) and posts no gather.
  void resume_forward(int step, int layers_done) override;
  void skip_layers(int count) override;
  // Warm-up (synchronous) steps and displaced steps: two graphs.
  int graph_kind(int step) const override { return synchronous_at(step) ? 0 : 1; }
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override;

  const DisplacedStats& stats() const { return stats_; }
  std::string report() const override;
  uint64_t plan_epoch() const override { return plan_epoch_; }
  // Bytes of the persistent buffers for a sequence of `tokens` tokens (`compute`: the dtype of
  // the activations; a working copy is needed when it differs from the stale dtype).
  static double buffer_bytes(int layers, int64_t tokens, int64_t hidden, DType stale_dtype,
                             DType compute = DType::f32);

  // Completes every gather still in flight (prepare() does it too); the buffers then hold
  // every rank's latest rows.
  void drain(Backend& backend);
  // The persistent K and V buffers of one layer, [L, H, D] in the stale dtype (tests, reports).
  const Tensor& stale_keys(int layer) const { return stale_k_[size_t(layer)]; }
  const Tensor& stale_values(int layer) const { return stale_v_[size_t(layer)]; }

 private:
  bool synchronous_at(int step) const { return options_.full_sync || step < options_.warmup_steps; }
  bool synchronous() const { return synchronous_at(step_); }
  // Lays out the buffers and builds the exchanges (reusing the block when large enough).
  void plan(Backend& backend);
  void lay_out(Arena& arena);
  // Advances every pending gather (MPI makes progress only inside its calls).
  void drive_progress();
  bool fp8() const { return options_.stale_dtype == DType::e4m3; }
  // Calls f(exchange) for each gather of layer l: K and V, and with FP8 their scales.
  template <typename F>
  void each_gather(size_t l, F&& f) {
    f(*gather_k_[l]);
    f(*gather_v_[l]);
    if (fp8()) {
      f(*gather_k_scales_[l]);
      f(*gather_v_scales_[l]);
    }
  }

  Communicator& group_;
  int layers_, heads_, head_dim_;
  DisplacedOptions options_;
  DType compute_;
  DisplacedStats stats_;
  int step_ = -1, layer_ = 0;

  std::vector<SequenceShard> shards_;  // the plan's key (with position_ and compute_)
  int position_ = -1;
  bool planned_ = false;
  uint64_t plan_epoch_ = 0;  // bumped by every plan()
  int64_t tokens_ = 0, own_offset_ = 0, own_rows_ = 0;

  Arena arena_;
  std::vector<Tensor> stale_k_, stale_v_;  // per layer [L, H, D] in the stale dtype
  std::vector<Tensor> k_scales_, v_scales_;  // FP8: per layer [L] f32, the rows' scales
  Tensor work_k_, work_v_;  // [L, H, D] in the compute dtype (stale dtype != compute only)
  std::vector<std::unique_ptr<Exchange>> gather_k_, gather_v_;  // per layer, in place
  std::vector<std::unique_ptr<Exchange>> gather_k_scales_, gather_v_scales_;  // FP8 only
  std::vector<bool> pending_;  // per layer: its gather was started and not yet finished
};

}  // namespace fresco
