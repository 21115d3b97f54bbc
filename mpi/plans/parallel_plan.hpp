// The parallel plan of a run: glue between a ParallelLayout, the chosen method and the
// transformer's attention hook (src/model/hooks.hpp; this layer never sees the transformer).
// The attention strategy and the token shards of each method, gathering a group's image-token
// rows, and the per-step communication accounting.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mpi/plans/displaced_attention.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/usp_attention.hpp"
#include "src/model/hooks.hpp"

namespace fresco {

enum class ParallelMethod {
  sequence,  // exact: Ulysses x Ring (USP) on contiguous ranges of the joint sequence
  patch,     // DistriFusion: displaced patch parallelism on bands of image rows
};

struct PlanOptions {
  ParallelMethod method = ParallelMethod::sequence;
  DisplacedOptions displaced;  // patch method only
  // Sequence method: how K/V chunks move between Ulysses groups (--inter-node ring|torus).
  InterNodeSchedule inter_node = InterNodeSchedule::ring;
  // Sequence method: the Ulysses all-to-all moves q, k, v as FP8 (e4m3) with per-token scales
  // (--comm-dtype e4m3; opt-in, not exact). The patch method's FP8 is its stale dtype.
  bool fp8_wire = false;
  // Sequence method, Ulysses alone: heads exchanged and attended in this many groups, each
  // group's transfers overlapping the previous group's attention (0: automatic; UspAttention).
  int head_groups = 0;
  // The model's activation dtype, so that prepare() allocates the strategy's buffers in it
  // (a strategy told wrong plans again once, at the first attend()). Set with set_compute().
  DType compute = DType::f32;
  // The activations' dtype, and the stale K/V's where it is automatic.
  void set_compute(DType dtype) {
    compute = dtype;
    if (displaced.stale_dtype_auto) displaced.stale_dtype = dtype;
  }
};

// The attention of the method: LocalAttention for groups of one rank, else UspAttention or
// DisplacedPatchAttention.
std::unique_ptr<AttentionStrategy> make_attention(const ParallelLayout& layout, const AttentionShape& shape,
                                                  const PlanOptions& plan);

// The shards of an image over the group (position order).
std::vector<SequenceShard> image_shards(const ParallelLayout& layout, const PlanOptions& plan,
                                        int64_t txt_len, int64_t grid_h, int64_t grid_w);

// Rows [shard.img_begin(), + shard.img_rows()) of every rank, gathered on every rank of the
// group: local [img_rows, C] -> [Limg, C] (contiguous host tensors of any dtype; not inside a
// step).
Tensor gather_image_rows(const ParallelLayout& layout, const std::vector<SequenceShard>& shards,
                         const Tensor& local);

// What each rank of a group sent and waited during a span of work of `seconds`; collective
// over `comm`, every rank gets the table.
struct StepAccounting {
  std::vector<CommStats> per_rank;  // by rank of the group
  std::vector<double> seconds;      // wall time of the span per rank
  // "rank r: sent X MiB, waited Y ms, computed Z ms" lines, divided by `steps` (per step).
  std::string table(const std::string& what, int64_t steps = 1) const;
};
StepAccounting gather_accounting(Communicator& comm, const CommStats& mine, double seconds);

}  // namespace fresco
