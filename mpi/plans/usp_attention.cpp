#include "mpi/plans/usp_attention.hpp"

#include <algorithm>
#include <cstring>

#include "src/core/error.hpp"

namespace fresco {
namespace {

// Byte counts of `rows` rows of `row_elements` elements of `dtype` each, packed.
Displacements packed_rows(const std::vector<int64_t>& rows, int64_t row_elements, DType dtype) {
  std::vector<size_t> counts;
  for (int64_t r : rows) counts.push_back(size_t(r * row_elements) * dtype_size(dtype));
  return Displacements::packed(std::move(counts));
}

}  // namespace

UspAttention::UspAttention(Communicator& ulysses, Communicator& ring, int heads, int head_dim, DType compute,
                           InterNodeSchedule schedule, bool fp8_wire)
    : ulysses_(ulysses),
      ring_(ring),
      heads_(heads),
      head_dim_(head_dim),
      U_(ulysses.size()),
      R_(ring.size()),
      heads_per_rank_((heads + ulysses.size() - 1) / ulysses.size()),
      compute_(compute),
      schedule_(schedule),
      fp8_wire_(fp8_wire) {
  FRESCO_ASSERT(compute == DType::f32 || compute == DType::bf16 || compute == DType::f16,
                std::string("USP: compute dtype ") + dtype_name(compute));
}

void UspAttention::prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) {
  FRESCO_ASSERT(int(shards.size()) == U_ * R_, "USP: one shard per rank of the group expected");
  const int u = position % U_, r = position / U_;
  FRESCO_ASSERT(u == ulysses_.rank() && r == ring_.rank(), "USP: position does not match the communicators");
  if (planned_ && position == position_ && shards == shards_) return;  // the same plan
  shards_ = shards;
  position_ = position;
  ulysses_rows_.assign(size_t(U_), 0);
  chunk_rows_.assign(size_t(R_), 0);
  for (int p = 0; p < U_ * R_; ++p) {
    chunk_rows_[size_t(p / U_)] += shards[size_t(p)].count();
    if (p / U_ == r) ulysses_rows_[size_t(p % U_)] = shards[size_t(p)].count();
  }
  rows_ = shards[size_t(position)].count();
  plan(backend);
}

int64_t UspAttention::real_columns(int u) const {
  const int64_t heads = std::clamp<int64_t>(heads_ - int64_t(u) * heads_per_rank_, 0, heads_per_rank_);
  return heads * head_dim_;
}

void UspAttention::lay_out(Arena& a) {
  const int64_t D = head_dim_, Hu = heads_per_rank_, HD = Hu * D, n = rows_;
  const int64_t N = chunk_rows_[size_t(ring_.rank())];
  const int64_t N_max = *std::max_element(chunk_rows_.begin(), chunk_rows_.end());
  auto take = [&](const Shape& s, DType dt) { return a.take(s, dt); };
  send_q_ = send_k_ = send_v_ = gather_ = q_c_ = o_c_ = k_c_ = v_c_ = Tensor();
  lse_c_ = o_part_ = lse_part_ = Tensor();
  for (int i = 0; i < 2; ++i) ring_k_[i] = ring_v_[i] = Tensor();
  for (int i = 0; i < 3; ++i) send_scales_[i] = arrived_[i] = arrived_scales_[i] = Tensor();
  if (U_ > 1) {
    send_q_ = take({U_ * n, HD}, wire());
    send_k_ = take({U_ * n, HD}, wire());
    send_v_ = take({U_ * n, HD}, wire());
    if (fp8_wire_)
      for (int i = 0; i < 3; ++i) {
        send_scales_[i] = take({U_ * n}, DType::f32);
        arrived_[i] = take({N, HD}, DType::e4m3);
        arrived_scales_[i] = take({N}, DType::f32);
      }
    gather_ = take({U_ * n, HD}, compute_);
    q_c_ = take({N, Hu, D}, compute_);
    o_c_ = take({N, Hu, D}, compute_);
  }
  if (U_ > 1 || R_ > 1) {
    k_c_ = take({N, Hu, D}, compute_);
    v_c_ = take({N, Hu, D}, compute_);
  }
  if (R_ > 1) {
    lse_c_ = take({N, Hu}, DType::f32);
    o_part_ = take({N, Hu, D}, compute_);
    lse_part_ = take({N, Hu}, DType::f32);
    for (int i = 0; i < 2; ++i) {
      ring_k_[i] = take({N_max, Hu, D}, compute_);
      ring_v_[i] = take({N_max, Hu, D}, compute_);
    }
  }
}

void UspAttention::plan(Backend& backend) {
  // The old exchanges are bound to the old layout: drop them first (they are idle here).
  ex_q_.reset();
  ex_k_.reset();
  ex_v_.reset();
  ex_o_.reset();
  for (auto& ex : ex_scales_) ex.reset();
  ring_ex_k_.clear();
  ring_ex_v_.clear();
  ring_held_k_.clear();
  ring_held_v_.clear();

  Arena measure;
  lay_out(measure);
  if (measure.used() > 0) {
    if (arena_.measuring() || arena_.capacity() < measure.used())
      arena_ = Arena(backend.alloc_storage(std::max(measure.used(), kExchangeAllocationBytes)));  // the only allocation
    else
      arena_.reset();  // the block is large enough: new views of it
    lay_out(arena_);
  }

  const int64_t HD = int64_t(heads_per_rank_) * head_dim_, n = rows_;
  if (U_ > 1) {
    // Padding heads (H not a multiple of U) are columns of the send buffers that no copy
    // writes: zero them once per plan, so the padded heads attend to zeros (from a host block
    // of zeros kept for re-plans).
    if (int64_t(heads_per_rank_) * U_ != heads_) {
      const size_t bytes = size_t(U_ * n * HD) * dtype_size(wire());  // zero bytes: 0 in every dtype
      if (!zeros_ || zeros_->bytes() < bytes) {
        zeros_ = Storage::host(bytes);
        std::memset(zeros_->data(), 0, bytes);
      }
      const Tensor zeros = Tensor::from_storage(zeros_, 0, {U_ * n, HD}, wire());
      for (const Tensor& send : {send_q_, send_k_, send_v_}) backend.copy(zeros, send);
    }
    const std::vector<int64_t> own(size_t(U_), n);
    const Displacements send_d = packed_rows(own, HD, wire()), recv_d = packed_rows(ulysses_rows_, HD, wire());
    const Tensor* sends[3] = {&send_q_, &send_k_, &send_v_};
    const Tensor* chunks[3] = {&q_c_, &k_c_, &v_c_};
    std::unique_ptr<Exchange>* exchanges[3] = {&ex_q_, &ex_k_, &ex_v_};
    for (int i = 0; i < 3; ++i) {
      *exchanges[i] = ulysses_.all_to_all(*sends[i], send_d, fp8_wire_ ? arrived_[i] : *chunks[i], recv_d);
      if (fp8_wire_)
        ex_scales_[i] = ulysses_.all_to_all(send_scales_[i], packed_rows(own, 1, DType::f32), arrived_scales_[i],
                                            packed_rows(ulysses_rows_, 1, DType::f32));
    }
    ex_o_ = ulysses_.all_to_all(o_c_, packed_rows(ulysses_rows_, HD, compute_), gather_,
                                packed_rows(own, HD, compute_));
    backend.synchronize();  // the copies of zeros are done before a later re-plan
  }
  if (R_ > 1) {
    // Step s attends to the block it holds (its own chunk at s = 0, ring buffer (s-1)%2 after)
    // while sending that block to the next rank and receiving the previous rank's into ring
    // buffer s%2.
    const int r = ring_.rank(), next = (r + 1) % R_, prev = (r + R_ - 1) % R_;
    auto chunk = [&](int s) { return chunk_rows_[size_t(((r - s) % R_ + R_) % R_)]; };
    for (int s = 0; s < R_; ++s) {
      ring_held_k_.push_back(s == 0 ? k_c_ : ring_k_[(s - 1) % 2].rows(0, chunk(s)));
      ring_held_v_.push_back(s == 0 ? v_c_ : ring_v_[(s - 1) % 2].rows(0, chunk(s)));
    }
    // Torus: step s sends this group's own chunk to group r+s+1 and receives the chunk of
    // group r-s-1, the one attended to at step s+1 (the same rows as the ring's).
    const bool torus = schedule_ == InterNodeSchedule::torus;
    for (int s = 0; s + 1 < R_; ++s) {
      const int dest = torus ? (r + s + 1) % R_ : next, source = torus ? ((r - s - 1) % R_ + R_) % R_ : prev;
      const Tensor& send_k = torus ? k_c_ : ring_held_k_[size_t(s)];
      const Tensor& send_v = torus ? v_c_ : ring_held_v_[size_t(s)];
      ring_ex_k_.push_back(ring_.send_recv(send_k, dest, ring_k_[s % 2].rows(0, chunk(s + 1)), source));
      ring_ex_v_.push_back(ring_.send_recv(send_v, dest, ring_v_[s % 2].rows(0, chunk(s + 1)), source));
    }
  }
  planned_ = true;
}

void UspAttention::scatter_heads(Backend& backend, const Tensor& x, const Tensor& send,
                                 const Tensor& scales) const {
  // x: [n, H, D] as [n, H*D] (row stride kept) -> send slot u' = head columns of rank u'
  const int64_t n = rows_, HD = int64_t(heads_per_rank_) * head_dim_;
  const Tensor source = x.reshape({n, int64_t(heads_) * head_dim_});
  for (int u = 0; u < U_; ++u) {
    const int64_t cols = real_columns(u);
    if (cols <= 0) continue;
    if (fp8_wire_)
      backend.quantize_rows(source.cols(u * HD, cols), send.rows(u * n, n).cols(0, cols), scales.rows(u * n, n));
    else
      backend.copy(source.cols(u * HD, cols), send.rows(u * n, n).cols(0, cols));
  }
}

void UspAttention::ring_attention(Backend& backend, const Tensor& q, const Tensor& o, const Tensor& lse) {
  Stream& stream = backend.stream();
  for (int s = 0; s < R_; ++s) {
    const bool more = s + 1 < R_;
    if (more) {  // the next block moves while this one is attended to
      ring_ex_k_[size_t(s)]->start(stream);
      ring_ex_v_[size_t(s)]->start(stream);
    }
    const Tensor& k = ring_held_k_[size_t(s)];
    const Tensor& v = ring_held_v_[size_t(s)];
    if (s == 0) {
      backend.attention(q, k, v, o, lse);
    } else {
      backend.attention(q, k, v, o_part_, lse_part_);
      backend.attention_merge(o_part_, lse_part_, o, lse);
    }
    if (more) {
      ring_ex_k_[size_t(s)]->finish(stream);
      ring_ex_v_[size_t(s)]->finish(stream);
    }
  }
  // Both ring buffers are free until the next call, whose first use of each is step 0 or 1's
  // receive: those two may land early (one-sided transports). Later steps reuse a buffer that
  // an earlier step of the same call still reads, so they wait for their own start().
  for (int s = 0; s < std::min(R_ - 1, 2); ++s) {
    ring_ex_k_[size_t(s)]->release(stream);
    ring_ex_v_[size_t(s)]->release(stream);
  }
}

void UspAttention::attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& o) {
  // q, k, v, o: [n, H, D] this rank's rows (any row strides)
  FRESCO_ASSERT(planned_, "USP attend: prepare() missing");
  const int64_t n = rows_, H = heads_, D = head_dim_, HD = int64_t(heads_per_rank_) * D;
  for (const Tensor* t : {&q, &k, &v, &o})
    FRESCO_ASSERT(t->rank() == 3 && t->dim(0) == n && t->dim(1) == H && t->dim(2) == D &&
                      t->dtype() == q.dtype(),
                  "USP attend: expected [" + std::to_string(n) + ", " + std::to_string(H) + ", " +
                      std::to_string(D) + "] in one dtype, got " + t->describe());
  if (q.dtype() != compute_) {  // the compute dtype differs from the hint: plan once for it
    compute_ = q.dtype();
    plan(backend);
  }
  Stream& stream = backend.stream();

  if (U_ == 1) {  // this rank's rows are its Ring chunk: no head exchange
    if (R_ == 1) {
      backend.attention(q, k, v, o, Tensor());
      return;
    }
    backend.copy(k, k_c_);  // contiguous: the ring's first send buffers
    backend.copy(v, v_c_);
    ring_attention(backend, q, o, lse_c_);
    return;
  }

  const Tensor* inputs[3] = {&q, &k, &v};
  const Tensor* sends[3] = {&send_q_, &send_k_, &send_v_};
  Exchange* exchanges[3] = {ex_q_.get(), ex_k_.get(), ex_v_.get()};
  for (int i = 0; i < 3; ++i) {  // each exchange starts as soon as its send buffer is ready
    scatter_heads(backend, *inputs[i], *sends[i], send_scales_[i]);
    exchanges[i]->start(stream);
    if (fp8_wire_) ex_scales_[i]->start(stream);
  }
  const Tensor* chunks[3] = {&q_c_, &k_c_, &v_c_};
  for (int i = 0; i < 3; ++i) {
    exchanges[i]->finish(stream);
    if (!fp8_wire_) continue;
    ex_scales_[i]->finish(stream);
    const int64_t N = chunks[i]->dim(0);
    backend.dequantize_rows(arrived_[i], arrived_scales_[i], chunks[i]->reshape({N, HD}));
  }

  if (R_ == 1)
    backend.attention(q_c_, k_c_, v_c_, o_c_, Tensor());
  else
    ring_attention(backend, q_c_, o_c_, lse_c_);

  // Inverse all-to-all: rows of o_c_ go back to their owners, for this rank's head slice.
  ex_o_->start(stream);
  ex_o_->finish(stream);
  const Tensor target = o.reshape({n, H * D});
  for (int u = 0; u < U_; ++u) {
    const int64_t cols = real_columns(u);
    if (cols > 0) backend.copy(gather_.rows(u * n, n).cols(0, cols), target.cols(u * HD, cols));
  }
}

}  // namespace fresco
