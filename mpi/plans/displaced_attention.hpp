// DistriFusion's displaced patch parallelism for the joint attention (docs/distrifusion.md).
//
// Each rank of a group holds one patch (a band of image rows plus a share of the text tokens)
// and keeps, per attention layer, a persistent buffer with the K and V of the whole sequence
// (rows in rank order; attention does not depend on the order of its keys).
//  - Warm-up steps (step < W) and --sync-mode full_sync: the fresh K/V of every patch are
//    gathered before the attention, which is then exact.
//  - Displaced steps: the layer's gather posted in the previous step is completed, the rank's
//    own rows are replaced by its fresh K/V, the attention runs on that (fresh own patch, stale
//    others), and a non-blocking all-gather of the fresh rows into the same buffer is posted.
//    It stays outstanding through the rest of the step (progress is driven by a test of every
//    pending gather at each attention layer) and is completed only when the next step reads it.
// Memory: 2 * L * d values per layer in the stale dtype, plus, for a 16-bit stale dtype, one
// f32 working copy of 2 * L * d shared by all layers.
#pragma once

#include <memory>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "src/model/flux_model.hpp"

namespace fresco {

struct DisplacedOptions {
  int warmup_steps = 4;           // steps computed synchronously (exact) before displacement
  bool full_sync = false;         // every step synchronous: the quality reference
  DType stale_dtype = DType::f32; // type of the stale K/V buffers (bf16/f16 halve them)
};

struct DisplacedStats {
  int64_t posted = 0;       // non-blocking gathers posted
  int64_t outstanding = 0;  // of those, still in flight when the next attention layer began
};

class DisplacedPatchAttention final : public AttentionStrategy {
 public:
  DisplacedPatchAttention(Communicator& group, int layers, int heads, int head_dim,
                          DisplacedOptions options);
  ~DisplacedPatchAttention() override;

  void prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) override;
  void begin_forward() override;
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override;

  const DisplacedStats& stats() const { return stats_; }
  std::string report() const override;
  // Bytes of the persistent buffers for a sequence of `tokens` tokens.
  static double buffer_bytes(int layers, int64_t tokens, int64_t hidden, DType stale_dtype);

 private:
  bool synchronous() const { return options_.full_sync || step_ < options_.warmup_steps; }
  // Advances every pending gather (MPI makes progress only inside its calls).
  void drive_progress();
  void gather(int layer, bool blocking);

  Communicator& group_;
  int layers_, heads_, head_dim_;
  DisplacedOptions options_;
  DisplacedStats stats_;
  int step_ = -1, layer_ = 0;
  int64_t own_offset_ = 0, own_rows_ = 0;
  Displacements row_bytes_;  // bytes of each rank's rows in one K or V buffer
  std::vector<Tensor> stale_k_, stale_v_;  // per layer [L, H, D] in the stale dtype
  Tensor work_k_, work_v_;                 // [L, H, D] f32 working copies (16-bit stale only)
  std::vector<std::vector<std::unique_ptr<Request>>> pending_;  // per layer
};

}  // namespace fresco
