// Exact sequence-parallel attention on a U x R mesh (USP): Ulysses inside, Ring across.
// Ulysses (U = 1: no exchange, the rank's own rows are the Ring chunk) and Ring (R = 1: one
// local block) are the two corners.
//
// Per call, with this rank holding n rows of the group's sequence for all H heads:
//  1. Ulysses all-to-all over the U ranks of its Ulysses group: each sends head slice u' of its
//     rows to rank u' and receives rows of all U ranks for its Hu = ceil(H/U) heads. Result: the
//     Ring chunk (the U shards of this Ulysses group, in order) for Hu heads. Heads beyond H are
//     zero padding (their attention is zero and is dropped).
//  2. Ring attention over the R Ulysses groups: K/V chunks rotate through R-1 neighbour
//     exchanges on two persistent buffers; the transfer of the next chunk is in flight while the
//     current one is attended to, and partial results are merged by the log-sum-exp rule (fp32).
//     Torus schedule (StreamFusion; docs/parallelism.md): the same R-1 steps and buffers, but
//     at step s every group sends its own chunk straight to group r+s+1 and receives group
//     r-s-1's, so no transfer waits for an earlier arrival (nothing is forwarded).
//  3. The inverse all-to-all returns each rank's rows for all heads.
//
// Head groups (FastUSP's chunked pipeline; Ulysses only, R = 1): the Hu heads of a rank are
// exchanged and attended in G groups of Hu/G heads, each with its own buffers and exchanges.
// All q/k/v exchanges start as soon as their send buffers are filled; group g's attention runs
// while groups g+1.. are still in flight, and its output returns while group g+1 is attended
// to. Only the first group's q/k/v and the last group's output are left on the critical path.
// Opt-in (--head-groups): on 4 H100s over IPC it made steps slower, not faster.
//
// Planning: prepare() lays every buffer out in one arena block and builds every exchange (the
// three forward all-to-alls, the inverse one, the 2 ring steps) bound to those buffers.
// A later prepare() with the same shards keeps both (same addresses, nothing allocated); new
// shards re-lay the same block when it is large enough. Activations are in the compute dtype
// (the dtype of q; a constructor hint lets prepare() allocate for it before the first attend(),
// which otherwise re-plans once); the log-sum-exp buffers are f32.
#pragma once

#include <memory>
#include <vector>

#include "mpi/comm/communicator.hpp"
#include "src/model/hooks.hpp"

namespace fresco {

// How K/V chunks travel between the R Ulysses groups (usually nodes): passed on around a ring,
// or sent directly in shifted pairwise steps (Torus).
enum class InterNodeSchedule { ring, torus };

class UspAttention final : public AttentionStrategy {
 public:
  // fp8_wire: the Ulysses all-to-all moves q, k and v as e4m3 with per-token scales
  // (Backend::quantize_rows; half the bytes of bf16), dequantized into the compute dtype on
  // arrival; the attention output returns in the compute dtype.
  // head_groups: G requested (0: automatic, see choose_head_groups()); used where R = 1 and G
  // divides Hu, else the largest divisor of Hu below it.
  UspAttention(Communicator& ulysses, Communicator& ring, int heads, int head_dim,
               DType compute = DType::f32, InterNodeSchedule schedule = InterNodeSchedule::ring,
               bool fp8_wire = false, int head_groups = 0);

  void prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) override;
  void attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& o) override;

  uint64_t plan_epoch() const override { return plan_epoch_; }
  // Bytes of the arena block holding this plan's buffers (0 before prepare()).
  size_t buffer_bytes() const { return arena_.capacity(); }
  // The head groups G of the plan (1: one exchange of all heads; the automatic choice, as
  // measured: see choose_head_groups).
  int head_groups() const { return groups_in_use_; }
  // The rule: G for `heads` over U x R with `requested` groups (0: automatic).
  static int choose_head_groups(int heads, int U, int R, int requested);

 private:
  // Lays out the buffers for the current shards and compute dtype and builds the exchanges,
  // reusing the arena block when it is large enough.
  void plan(Backend& backend);
  void lay_out(Arena& arena);
  // x [n, H, D] (any row stride) -> send [U * n, Hg * D] for head group g: slot u' = heads
  // [g Hg, (g+1) Hg) of rank u''s slice (with FP8: quantized, each row's scale into scales
  // [U * n]).
  void scatter_heads(Backend& backend, const Tensor& x, int group, const Tensor& send, const Tensor& scales) const;
  // The dtype the Ulysses all-to-all of q, k, v moves.
  DType wire() const { return fp8_wire_ ? DType::e4m3 : compute_; }
  // Columns of real (not padding) heads of head group g in slot u.
  int64_t real_columns(int u, int group) const;
  // Hg * D: the columns of one head group.
  int64_t group_columns() const { return int64_t(heads_per_rank_ / groups_in_use_) * head_dim_; }
  // Attention of q over the Ring: writes o (and lse when R > 1).
  void ring_attention(Backend& backend, const Tensor& q, const Tensor& o, const Tensor& lse);

  Communicator& ulysses_;
  Communicator& ring_;
  int heads_, head_dim_, U_, R_, heads_per_rank_;  // Hu = ceil(H / U)
  DType compute_;
  InterNodeSchedule schedule_;
  bool fp8_wire_;
  int head_groups_requested_;
  int groups_in_use_ = 1;

  // The plan's key: the shards and position it was built for (and compute_).
  std::vector<SequenceShard> shards_;
  int position_ = -1;
  bool planned_ = false;
  uint64_t plan_epoch_ = 0;  // bumped by every plan()

  int64_t rows_ = 0;                   // n: rows of this rank
  std::vector<int64_t> ulysses_rows_;  // rows of each rank of this Ulysses group
  std::vector<int64_t> chunk_rows_;    // rows of each Ring chunk (one per Ulysses group)

  Arena arena_;
  std::shared_ptr<Storage> zeros_;   // host zeros for the padding heads' columns (H % U != 0)
  // U > 1 only: one head group's buffers ([N, Hg, D] chunks, [U * n, Hg * D] send/gather,
  // Hg = Hu / G) and exchanges. Index 0, 1, 2: q, k, v.
  struct HeadGroup {
    Tensor send[3];        // [U * n, Hg * D] the forward all-to-all's send buffers (wire dtype)
    // FP8 wire only: per-token scales sent [U * n] f32, and what arrives: [N, Hg * D] e4m3 and
    // [N] f32.
    Tensor send_scales[3], arrived[3], arrived_scales[3];
    Tensor chunk[3], o;    // [N, Hg, D] the Ring chunk's q, k, v and output
    Tensor gather;         // [U * n, Hg * D] the inverse all-to-all's receive buffer
    std::unique_ptr<Exchange> ex[3], ex_scales[3], ex_o;
  };
  std::vector<HeadGroup> groups_;
  Tensor q_c_, o_c_;                 // [N, Hu, D] group 0's q and output when G = 1 (the Ring's)
  // U > 1 or R > 1:
  Tensor k_c_, v_c_;                 // [N, Hu, D] this rank's K/V block (sent at ring step 0)
  // R > 1 only:
  Tensor lse_c_;                     // [N, Hu] f32 running log-sum-exp
  Tensor o_part_, lse_part_;         // [N, Hu, D], [N, Hu] f32 one K/V block's partial output
  Tensor ring_k_[2], ring_v_[2];     // [N_max, Hu, D] K/V blocks in flight
  Tensor ring_in_k_[2], ring_in_v_[2];  // views: the rows that arrive into each ring buffer

  std::vector<std::unique_ptr<Exchange>> ring_ex_k_, ring_ex_v_;  // step s = 0 .. R-2
  std::vector<Tensor> ring_held_k_, ring_held_v_;  // block attended to at step s = 0 .. R-1
};

}  // namespace fresco
