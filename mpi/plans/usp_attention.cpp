#include "mpi/plans/usp_attention.hpp"

#include <algorithm>

#include "src/core/error.hpp"

namespace fresco {
namespace {

// Byte counts of `rows` rows of `row_floats` floats each, packed one after another.
Displacements packed_rows(const std::vector<int64_t>& rows, int64_t row_floats) {
  std::vector<size_t> counts;
  for (int64_t r : rows) counts.push_back(size_t(r * row_floats) * sizeof(float));
  return Displacements::packed(std::move(counts));
}

}  // namespace

UspAttention::UspAttention(Communicator& ulysses, Communicator& ring, int heads, int head_dim)
    : ulysses_(ulysses),
      ring_(ring),
      heads_(heads),
      head_dim_(head_dim),
      U_(ulysses.size()),
      R_(ring.size()),
      heads_per_rank_((heads + ulysses.size() - 1) / ulysses.size()) {}

void UspAttention::prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) {
  FRESCO_ASSERT(int(shards.size()) == U_ * R_, "USP: one shard per rank of the group expected");
  const int u = position % U_, r = position / U_;
  FRESCO_ASSERT(u == ulysses_.rank() && r == ring_.rank(), "USP: position does not match the communicators");
  const int64_t D = head_dim_, Hu = heads_per_rank_, HD = Hu * D;
  ulysses_rows_.assign(size_t(U_), 0);
  chunk_rows_.assign(size_t(R_), 0);
  for (int p = 0; p < U_ * R_; ++p) {
    chunk_rows_[size_t(p / U_)] += shards[size_t(p)].count();
    if (p / U_ == r) ulysses_rows_[size_t(p % U_)] = shards[size_t(p)].count();
  }
  rows_ = shards[size_t(position)].count();
  const int64_t n = rows_, N = chunk_rows_[size_t(r)];
  const int64_t N_max = *std::max_element(chunk_rows_.begin(), chunk_rows_.end());
  scatter_send_ = packed_rows(std::vector<int64_t>(size_t(U_), n), HD);
  scatter_recv_ = packed_rows(ulysses_rows_, HD);

  auto alloc = [&](Shape s) { return backend.alloc(s, DType::f32); };
  if (Hu * U_ != heads_) {
    padded_ = backend.upload(Tensor::zeros({n, U_ * HD}));  // padding columns stay zero
  } else {
    padded_ = Tensor();
  }
  send_q_ = alloc({U_ * n, HD});
  send_k_ = alloc({U_ * n, HD});
  send_v_ = alloc({U_ * n, HD});
  gather_ = alloc({U_ * n, HD});
  q_c_ = alloc({N, Hu, D});
  k_c_ = alloc({N, Hu, D});
  v_c_ = alloc({N, Hu, D});
  o_c_ = alloc({N, Hu, D});
  lse_c_ = alloc({N, Hu});
  o_part_ = alloc({N, Hu, D});
  lse_part_ = alloc({N, Hu});
  for (int i = 0; i < 2 && R_ > 1; ++i) {
    ring_k_[i] = alloc({N_max, Hu, D});
    ring_v_[i] = alloc({N_max, Hu, D});
  }
}

void UspAttention::scatter_heads(Backend& backend, const Tensor& x, const Tensor& send) {
  // x: [n, H, D] -> padded [n, U*Hu*D] -> send slot u' = columns [u' Hu D, (u'+1) Hu D)
  const int64_t n = rows_, HD = int64_t(heads_per_rank_) * head_dim_;
  Tensor source = x.reshape({n, int64_t(heads_) * head_dim_});
  if (padded_.defined()) {
    backend.paste_columns(source, padded_, 0);
    source = padded_;
  }
  for (int u = 0; u < U_; ++u) backend.copy_columns(source, u * HD, send.rows(u * n, n));
}

std::unique_ptr<Request> UspAttention::ulysses_exchange(const Tensor& send, const Tensor& recv) {
  return ulysses_.all_to_all_start(send.raw(), scatter_send_, recv.raw(), scatter_recv_);
}

void UspAttention::ring_attention(Backend& backend) {
  const int r = ring_.rank(), next = (r + 1) % R_, prev = (r + R_ - 1) % R_;
  Tensor cur_k = k_c_, cur_v = v_c_;  // step 0: this rank's own chunk
  for (int s = 0; s < R_; ++s) {
    std::unique_ptr<Request> k_req, v_req;
    Tensor next_k, next_v;
    if (s + 1 < R_) {
      // Start moving the block we hold to the next rank and take the previous rank's block.
      const int64_t rows_in = chunk_rows_[size_t((r - s - 1 + 2 * R_) % R_)];
      next_k = ring_k_[s % 2].rows(0, rows_in);
      next_v = ring_v_[s % 2].rows(0, rows_in);
      k_req = ring_.send_recv_start(cur_k.raw(), cur_k.bytes(), next, next_k.raw(), next_k.bytes(), prev);
      v_req = ring_.send_recv_start(cur_v.raw(), cur_v.bytes(), next, next_v.raw(), next_v.bytes(), prev);
    }
    if (s == 0) {
      backend.attention(q_c_, cur_k, cur_v, o_c_, lse_c_);
    } else {
      backend.attention(q_c_, cur_k, cur_v, o_part_, lse_part_);
      backend.attention_merge(o_c_, lse_c_, o_part_, lse_part_);
    }
    if (k_req) {
      k_req->wait();
      v_req->wait();
      cur_k = next_k;
      cur_v = next_v;
    }
  }
}

void UspAttention::attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& o) {
  // q, k, v, o: [n, H, D] this rank's rows
  const int64_t n = rows_, HD = int64_t(heads_per_rank_) * head_dim_;
  FRESCO_ASSERT(q.dim(0) == n, "USP attend: rows differ from prepare()");
  scatter_heads(backend, q, send_q_);
  auto q_req = ulysses_exchange(send_q_, q_c_);
  scatter_heads(backend, k, send_k_);
  auto k_req = ulysses_exchange(send_k_, k_c_);
  scatter_heads(backend, v, send_v_);
  auto v_req = ulysses_exchange(send_v_, v_c_);
  q_req->wait();
  k_req->wait();
  v_req->wait();

  ring_attention(backend);

  // Inverse all-to-all: rows of o_c_ go back to their owners, for this rank's head slice.
  ulysses_.all_to_all(o_c_.raw(), scatter_recv_, gather_.raw(), scatter_send_);
  const Tensor target = padded_.defined() ? padded_ : o.reshape({n, int64_t(heads_) * head_dim_});
  for (int u = 0; u < U_; ++u) backend.paste_columns(gather_.rows(u * n, n), target, u * HD);
  if (padded_.defined()) {
    backend.copy_columns(padded_, 0, o.reshape({n, int64_t(heads_) * head_dim_}));
    // The padding columns of padded_ now hold zero-head outputs (zeros): still zero.
  }
}

}  // namespace fresco
