#include "mpi/plans/parallel_plan.hpp"

#include <cstdio>
#include <cstring>
#include <sstream>

#include "mpi/plans/usp_attention.hpp"

namespace fresco {

std::unique_ptr<AttentionStrategy> make_attention(const ParallelLayout& layout, const AttentionShape& shape,
                                                  const PlanOptions& plan) {
  if (layout.group_size() == 1) return std::make_unique<LocalAttention>();
  if (plan.method == ParallelMethod::patch)
    return std::make_unique<DisplacedPatchAttention>(layout.group(), shape.layers, shape.heads, shape.head_dim,
                                                     plan.displaced, plan.compute);
  return std::make_unique<UspAttention>(layout.ulysses_comm(), layout.ring_comm(), shape.heads, shape.head_dim,
                                        plan.compute, plan.inter_node, plan.fp8_wire, plan.head_groups);
}

std::vector<SequenceShard> image_shards(const ParallelLayout& layout, const PlanOptions& plan,
                                        int64_t txt_len, int64_t grid_h, int64_t grid_w) {
  if (plan.method == ParallelMethod::patch)
    return partition_patches(txt_len, grid_h, grid_w, layout.group_size());
  return partition_sequence(txt_len, grid_h * grid_w, layout.group_size());
}

Tensor gather_image_rows(const ParallelLayout& layout, const std::vector<SequenceShard>& shards,
                         const Tensor& local) {
  // local: [img_rows, C] of this rank -> all: [Limg, C]; image rows are in position order.
  FRESCO_ASSERT(local.device() == Device::cpu && local.contiguous(),
                "gather_image_rows: a contiguous host tensor expected, got " + local.describe());
  const int64_t C = local.row_numel(), Limg = shards.front().img_len;
  FRESCO_ASSERT(local.dim(0) == shards[size_t(layout.position())].img_rows(),
                "gather_image_rows: " + local.describe() + " is not this rank's image rows");
  std::vector<size_t> counts;
  for (const SequenceShard& s : shards) counts.push_back(size_t(s.img_rows() * C) * dtype_size(local.dtype()));
  Shape shape = local.shape();
  shape[0] = Limg;
  Tensor all(shape, local.dtype());
  layout.group().host_all_gather(local.raw(), all.raw(), Displacements::packed(std::move(counts)));
  return all;
}

StepAccounting gather_accounting(Communicator& comm, const CommStats& mine, double seconds) {
  const double send[3] = {mine.bytes_sent, mine.wait_seconds, seconds};
  std::vector<double> all(size_t(3 * comm.size()));
  comm.host_all_gather(send, all.data(),
                       Displacements::packed(std::vector<size_t>(size_t(comm.size()), sizeof send)));
  StepAccounting acc;
  for (int r = 0; r < comm.size(); ++r) {
    acc.per_rank.push_back({all[size_t(3 * r)], all[size_t(3 * r + 1)]});
    acc.seconds.push_back(all[size_t(3 * r + 2)]);
  }
  return acc;
}

std::string StepAccounting::table(const std::string& what, int64_t steps) const {
  const double per = 1.0 / double(steps);
  std::ostringstream s;
  for (size_t r = 0; r < per_rank.size(); ++r) {
    char line[200];
    std::snprintf(line, sizeof line,
                  "  %s rank %zu: sent %.3f MiB, waited on communication %.1f ms, computed %.1f ms\n",
                  what.c_str(), r, per * per_rank[r].bytes_sent / (1 << 20),
                  per * 1e3 * per_rank[r].wait_seconds,
                  per * 1e3 * (seconds[r] - per_rank[r].wait_seconds));
    s << line;
  }
  return s.str();
}

}  // namespace fresco
