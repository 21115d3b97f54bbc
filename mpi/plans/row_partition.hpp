// Patch-parallel decoding over the ranks of a group: each rank holds a band of latent rows
// (near-equal, the larger bands first). A 3x3 convolution gets one halo row from each
// neighbour, GroupNorm sums are all-reduced (in double, on the compute stream), and the
// mid-block attention runs as Ring attention over the group (single head, so Ulysses has
// degree 1).
//
// Planning: prepare() allocates the halo buffers once (one block for the widest row; a later
// prepare() that fits reuses it); the send/recv exchanges of each activation shape [C, W] are
// built at its first halo exchange and replayed afterwards, so a decode allocates nothing
// after its first use of each shape.
#pragma once

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/plans/usp_attention.hpp"
#include "src/model/hooks.hpp"

namespace fresco {

class GroupRows final : public RowPartition {
 public:
  // `group`: the ranks decoding one image; `latent_rows`: the latent's height.
  GroupRows(Communicator& group, int64_t latent_rows, int channels_of_attention);
  ~GroupRows() override;

  int size() const override { return group_.size(); }
  int index() const override { return group_.rank(); }
  const std::vector<int64_t>& latent_rows() const override { return rows_; }
  void prepare(Backend& backend, int64_t max_row_elements, DType dtype) override;
  void exchange_halo(Backend& backend, const Tensor& x) override;
  void all_reduce(Backend& backend, const Tensor& sums) override;
  AttentionStrategy& attention() override { return attention_; }

  // Rows [first, first + count) of the latent held here.
  int64_t first_row() const;

 private:
  // One neighbour: the row sent to it and the halo row received from it, with their buffers
  // (views of the halo block) and the planned exchange.
  struct Side {
    int peer = 0;
    bool below = false;  // the neighbour holds the rows below this part
    Tensor send, recv;   // [C, W]
    std::unique_ptr<Exchange> exchange;
  };
  using ShapeKey = std::tuple<int64_t, int64_t, DType>;  // C, W, dtype
  std::vector<Side>& sides_for(Backend& backend, int64_t C, int64_t W, DType dtype);

  Communicator& group_;
  std::vector<int64_t> rows_;
  std::unique_ptr<MpiCommunicator> single_;  // this rank alone: the Ulysses degree 1
  UspAttention attention_;
  std::shared_ptr<Storage> halo_;  // 4 slots: send and recv rows per side
  size_t slot_bytes_ = 0;          // bytes of one slot (the widest row, aligned)
  std::map<ShapeKey, std::vector<Side>> sides_;
};

}  // namespace fresco
