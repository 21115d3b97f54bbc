// The two places where a model hands work to a parallel plan, and nothing else: the joint
// attention of the transformer (AttentionStrategy) and the coupling of a decoder's row bands
// (RowPartition). src/model/ and mpi/plans/ both depend on this header and never on each other.
#pragma once

#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/sequence_shard.hpp"

namespace fresco {

// The attention a model hands to a plan, all the plan needs to know of the model: how many
// attention layers a step runs and their heads (the joint sequence's q, k, v are [n, heads,
// head_dim] in every layer).
struct AttentionShape {
  int layers = 0;
  int heads = 0;
  int head_dim = 0;
};

class AttentionStrategy {
 public:
  virtual ~AttentionStrategy() = default;
  // Called once per image, before its steps: the shards of every rank of the group (in
  // position order) and this rank's position. Allocates what attend() needs and plans its
  // exchanges; a later image with the same shards reuses both (addresses stay fixed).
  virtual void prepare(Backend& /*backend*/, const std::vector<SequenceShard>& /*shards*/,
                       int /*position*/) {}
  // Called at the start of every forward (one per denoising step), before the first attend().
  virtual void begin_forward() {}
  // Called at the end of every forward, after the last attend(), on the compute stream.
  virtual void end_forward(Backend& /*backend*/) {}
  // The denoising step the next forward computes (0 = the image's first). A replayed step graph
  // runs no host code, so a strategy whose work depends on the step is told where the sampler
  // is; without a call, each forward is the step after the last.
  virtual void set_step(int /*step*/) {}
  // Step caching runs a forward in two parts with a host decision between them, each part
  // captured as its own graph (runtime/step_runner.hpp). resume_forward: the next attend() is
  // layer `layers_done` of step `step`, whose earlier layers ran before, possibly in a replayed
  // graph that ran no host code (a plan with per-layer state rebuilds it here).
  // skip_layers: a cached step does not run the next `count` layers (docs/step-cache.md says
  // what that means for each plan).
  virtual void resume_forward(int /*step*/, int /*layers_done*/) {}
  virtual void skip_layers(int /*count*/) {}
  // Steps of one kind run the same work and may share a captured graph; a new kind needs its own.
  virtual int graph_kind(int /*step*/) const { return 0; }
  // A line about the strategy's own work since prepare() for the per-image report ("" if none).
  virtual std::string report() const { return ""; }
  // Changes whenever prepare() lays out new buffers or builds new exchanges: a step graph
  // captured under another value replays transfers of another plan (runtime/step_runner.hpp).
  virtual uint64_t plan_epoch() const { return 0; }
  // q, k, v: [n, H, D], this rank's shard of the sequence (after QK-norm and RoPE; any row
  // stride, v is usually read in place from the qkv rows); o: [n, H, D] (any row stride) the
  // attention output of the same rows over the whole sequence. Everything is ordered on the
  // backend's compute stream.
  virtual void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& o) = 0;
};

// All tokens on this rank: the backend's attention op over the whole joint sequence.
class LocalAttention final : public AttentionStrategy {
 public:
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override {
    backend.joint_attention(q, k, v, o, Tensor());
  }
};

// How the row bands of a decoded image are coupled (channel-major activations [C, rows, W]).
class RowPartition {
 public:
  virtual ~RowPartition() = default;
  virtual int size() const = 0;
  virtual int index() const = 0;
  // Latent rows of each part, in order.
  virtual const std::vector<int64_t>& latent_rows() const = 0;
  // Called before a decode: the largest C * W a halo row will have, so buffers are allocated
  // once per image shape.
  virtual void prepare(Backend& /*backend*/, int64_t /*max_row_elements*/, DType /*dtype*/) {}
  // x: [C, rows + 2, W]: fills row 0 with the last row of the part above and row rows+1 with
  // the first row of the part below (left as they are at the image border, where the caller
  // keeps zeros); rows 1..rows are this part's.
  virtual void exchange_halo(Backend& backend, const Tensor& x) = 0;
  // sums: device tensor (f64) summed over all parts in place, ordered on the compute stream.
  virtual void all_reduce(Backend& backend, const Tensor& sums) = 0;
  // The attention of the mid block over all positions of the image (heads = 1, D = channels).
  virtual AttentionStrategy& attention() = 0;
};

// The whole latent on this rank.
class LocalRows final : public RowPartition {
 public:
  explicit LocalRows(int64_t rows) : rows_{rows} {}
  int size() const override { return 1; }
  int index() const override { return 0; }
  const std::vector<int64_t>& latent_rows() const override { return rows_; }
  void exchange_halo(Backend&, const Tensor&) override {}  // borders stay zero
  void all_reduce(Backend&, const Tensor&) override {}
  AttentionStrategy& attention() override { return attention_; }

 private:
  std::vector<int64_t> rows_;
  LocalAttention attention_;
};

}  // namespace fresco
