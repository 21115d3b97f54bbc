// Patch-parallel decoding over the ranks of a group: each rank holds a band of latent rows
// (near-equal, the larger bands first). A 3x3 convolution gets one halo row from each
// neighbour, GroupNorm sums are all-reduced (in double), and the mid-block attention runs as
// Ring attention over the group (single head, so Ulysses has degree 1).
#pragma once

#include <memory>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/plans/usp_attention.hpp"
#include "src/model/vae_decoder.hpp"

namespace fresco {

class GroupRows final : public RowPartition {
 public:
  // `group`: the ranks decoding one image; `latent_rows`: the latent's height.
  GroupRows(Communicator& group, int64_t latent_rows, int channels_of_attention);

  int size() const override { return group_.size(); }
  int index() const override { return group_.rank(); }
  const std::vector<int64_t>& latent_rows() const override { return rows_; }
  void exchange_halo(Backend& backend, const Tensor& x) override;
  void all_reduce(std::vector<double>& values) override { group_.all_reduce_sum(values.data(), values.size()); }
  AttentionStrategy& attention() override { return attention_; }

  // Rows [first, first + count) of the latent held here.
  int64_t first_row() const;

 private:
  Communicator& group_;
  std::vector<int64_t> rows_;
  std::unique_ptr<MpiCommunicator> single_;  // this rank alone: the Ulysses degree 1
  UspAttention attention_;
};

}  // namespace fresco
