// Exact sequence-parallel attention on a U x R mesh (USP): Ulysses inside, Ring across.
// Ulysses (U = 1: skipped to a copy) and Ring (R = 1: one local block) are the two corners.
//
// Per call, with this rank holding n rows of the group's sequence for all H heads:
//  1. Ulysses all-to-all over the U ranks of its Ulysses group: each sends head slice u' of its
//     rows to rank u' and receives rows of all U ranks for its Hu = ceil(H/U) heads. Result: the
//     Ring chunk (the U shards of this Ulysses group, in order) for Hu heads. Heads beyond H are
//     zero padding (their attention is zero and is dropped).
//  2. Ring attention over the R Ulysses groups: K/V chunks rotate through R-1 neighbour
//     exchanges on two persistent buffers; the transfer of the next chunk is in flight while the
//     current one is attended to, and partial results are merged by the log-sum-exp rule (fp32).
//  3. The inverse all-to-all returns each rank's rows for all heads.
#pragma once

#include <vector>

#include "mpi/comm/communicator.hpp"
#include "src/model/flux_model.hpp"

namespace fresco {

class UspAttention final : public AttentionStrategy {
 public:
  UspAttention(Communicator& ulysses, Communicator& ring, int heads, int head_dim);

  void prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) override;
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override;

 private:
  // q/k/v [n, H, D] -> send buffer [U * n, Hu * D] (slot u' = head slice u').
  void scatter_heads(Backend& backend, const Tensor& x, const Tensor& send);
  std::unique_ptr<Request> ulysses_exchange(const Tensor& send, const Tensor& recv);
  void ring_attention(Backend& backend);

  Communicator& ulysses_;
  Communicator& ring_;
  int heads_, head_dim_, U_, R_, heads_per_rank_;  // Hu = ceil(H / U)
  int64_t rows_ = 0;                   // n: rows of this rank
  std::vector<int64_t> ulysses_rows_;  // rows of each rank of this Ulysses group
  std::vector<int64_t> chunk_rows_;    // rows of each Ring chunk (one per Ulysses group)
  Displacements scatter_send_, scatter_recv_;  // bytes of the forward all-to-all

  Tensor padded_;                    // [n, U * Hu * D] heads padded to a multiple of U
  Tensor send_q_, send_k_, send_v_;  // [U * n, Hu * D]
  Tensor q_c_, k_c_, v_c_;           // [N, Hu, D] the Ring chunk of this Ulysses group
  Tensor o_c_, lse_c_;               // [N, Hu, D], [N, Hu] running attention output
  Tensor o_part_, lse_part_;         // [N, Hu, D], [N, Hu] one K/V block's partial output
  Tensor ring_k_[2], ring_v_[2];     // [N_max, Hu, D] K/V blocks in flight
  Tensor gather_;                    // [U * n, Hu * D] the inverse all-to-all's receive buffer
};

}  // namespace fresco
