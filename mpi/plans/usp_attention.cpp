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
                           InterNodeSchedule schedule, bool fp8_wire, int head_groups)
    : ulysses_(ulysses),
      ring_(ring),
      heads_(heads),
      head_dim_(head_dim),
      U_(ulysses.size()),
      R_(ring.size()),
      heads_per_rank_((heads + ulysses.size() - 1) / ulysses.size()),
      compute_(compute),
      schedule_(schedule),
      fp8_wire_(fp8_wire),
      head_groups_requested_(head_groups) {
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

int UspAttention::choose_head_groups(int heads, int U, int R, int requested) {
  // Ulysses alone (the Ring attends all Hu heads of a block at once); G divides Hu.
  // Automatic: one group. Measured on 4 H100s (docs/performance.md), groups made every step
  // slower (2048² Ulysses-4: 201.7 ms with G = 1, 208.4 with 2, 215.4 with 3): the exposed time
  // is not transfer time that overlap could hide, and each group adds exchanges whose
  // hand-overs wait on the slowest peer.
  if (U <= 1 || R != 1) return 1;
  const int Hu = (heads + U - 1) / U;
  int groups = std::clamp(requested > 0 ? requested : 1, 1, Hu);
  while (Hu % groups != 0) --groups;
  return groups;
}

int64_t UspAttention::real_columns(int u, int group) const {
  const int64_t heads = std::clamp<int64_t>(heads_ - int64_t(u) * heads_per_rank_, 0, heads_per_rank_);
  const int64_t cols = group_columns();
  return std::clamp<int64_t>(heads * head_dim_ - group * cols, 0, cols);
}

void UspAttention::lay_out(Arena& a) {
  const int64_t D = head_dim_, Hu = heads_per_rank_, n = rows_;
  const int64_t N = chunk_rows_[size_t(ring_.rank())];
  const int64_t N_max = *std::max_element(chunk_rows_.begin(), chunk_rows_.end());
  auto take = [&](const Shape& s, DType dt) { return a.take(s, dt); };
  groups_.clear();
  q_c_ = o_c_ = k_c_ = v_c_ = Tensor();
  lse_c_ = o_part_ = lse_part_ = Tensor();
  for (int i = 0; i < 2; ++i) ring_k_[i] = ring_v_[i] = Tensor();
  const int G = groups_in_use_;
  const int64_t Hg = Hu / G, cols = group_columns();
  if (U_ > 1) {
    groups_.resize(size_t(G));
    for (HeadGroup& g : groups_) {
      for (int i = 0; i < 3; ++i) g.send[i] = take({U_ * n, cols}, wire());
      if (fp8_wire_)
        for (int i = 0; i < 3; ++i) {
          g.send_scales[i] = take({U_ * n}, DType::f32);
          g.arrived[i] = take({N, cols}, DType::e4m3);
          g.arrived_scales[i] = take({N}, DType::f32);
        }
      g.gather = take({U_ * n, cols}, compute_);
      g.chunk[0] = take({N, Hg, D}, compute_);
      g.o = take({N, Hg, D}, compute_);
      if (G > 1) {
        g.chunk[1] = take({N, Hg, D}, compute_);
        g.chunk[2] = take({N, Hg, D}, compute_);
      }
    }
    q_c_ = groups_[0].chunk[0];
    o_c_ = groups_[0].o;
  }
  if ((U_ > 1 && G == 1) || R_ > 1) {  // one K/V block of all Hu heads (the Ring's step 0)
    k_c_ = take({N, Hu, D}, compute_);
    v_c_ = take({N, Hu, D}, compute_);
    if (U_ > 1) {
      groups_[0].chunk[1] = k_c_;
      groups_[0].chunk[2] = v_c_;
    }
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
  groups_.clear();
  ring_ex_k_.clear();
  ring_ex_v_.clear();
  ring_held_k_.clear();
  ring_held_v_.clear();

  groups_in_use_ = choose_head_groups(heads_, U_, R_, head_groups_requested_);

  Arena measure;
  lay_out(measure);
  if (measure.used() > 0) {
    if (arena_.measuring() || arena_.capacity() < measure.used())
      arena_ = Arena(backend.alloc_storage(std::max(measure.used(), kExchangeAllocationBytes)));  // the only allocation
    else
      arena_.reset();  // the block is large enough: new views of it
    lay_out(arena_);
  }

  const int64_t cols = group_columns(), n = rows_;
  if (U_ > 1) {
    // Padding heads (H not a multiple of U) are columns of the send buffers that no copy
    // writes: zero them once per plan, so the padded heads attend to zeros (from a host block
    // of zeros kept for re-plans).
    if (int64_t(heads_per_rank_) * U_ != heads_) {
      const size_t bytes = size_t(U_ * n * cols) * dtype_size(wire());  // zero bytes: 0 in every dtype
      if (!zeros_ || zeros_->bytes() < bytes) {
        zeros_ = Storage::host(bytes);
        std::memset(zeros_->data(), 0, bytes);
      }
      const Tensor zeros = Tensor::from_storage(zeros_, 0, {U_ * n, cols}, wire());
      for (const HeadGroup& g : groups_)
        for (const Tensor& send : g.send) backend.copy(zeros, send);
    }
    const std::vector<int64_t> own(size_t(U_), n);
    const Displacements send_d = packed_rows(own, cols, wire()), recv_d = packed_rows(ulysses_rows_, cols, wire());
    for (HeadGroup& g : groups_) {
      for (int i = 0; i < 3; ++i) {
        g.ex[i] = ulysses_.all_to_all(g.send[i], send_d, fp8_wire_ ? g.arrived[i] : g.chunk[i], recv_d);
        if (fp8_wire_)
          g.ex_scales[i] = ulysses_.all_to_all(g.send_scales[i], packed_rows(own, 1, DType::f32), g.arrived_scales[i],
                                               packed_rows(ulysses_rows_, 1, DType::f32));
      }
      g.ex_o = ulysses_.all_to_all(g.o, packed_rows(ulysses_rows_, cols, compute_), g.gather,
                                   packed_rows(own, cols, compute_));
    }
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
  ++plan_epoch_;  // graphs captured on the old plan are stale
}

void UspAttention::scatter_heads(Backend& backend, const Tensor& x, int group, const Tensor& send,
                                 const Tensor& scales) const {
  // x: [n, H, D] as [n, H*D] (row stride kept) -> send slot u' = head group `group` of rank u''s
  // head columns
  const int64_t n = rows_, HD = int64_t(heads_per_rank_) * head_dim_, cols = group_columns();
  const Tensor source = x.reshape({n, int64_t(heads_) * head_dim_});
  for (int u = 0; u < U_; ++u) {
    const int64_t real = real_columns(u, group);
    if (real <= 0) continue;
    const Tensor from = source.cols(u * HD + group * cols, real), to = send.rows(u * n, n).cols(0, real);
    if (fp8_wire_)
      backend.quantize_rows(from, to, scales.rows(u * n, n));
    else
      backend.copy(from, to);
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
      backend.joint_attention(q, k, v, o, lse);
    } else {
      backend.joint_attention(q, k, v, o_part_, lse_part_);
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
      backend.joint_attention(q, k, v, o, Tensor());
      return;
    }
    backend.copy(k, k_c_);  // contiguous: the ring's first send buffers
    backend.copy(v, v_c_);
    ring_attention(backend, q, o, lse_c_);
    return;
  }

  // Every group's q, k, v leave as soon as their send buffers are filled; group g is attended
  // to while later groups are in flight, and its output returns while g+1 is attended to.
  const Tensor* inputs[3] = {&q, &k, &v};
  for (int g = 0; g < groups_in_use_; ++g)
    for (int i = 0; i < 3; ++i) {
      HeadGroup& group = groups_[size_t(g)];
      scatter_heads(backend, *inputs[i], g, group.send[i], group.send_scales[i]);
      group.ex[i]->start(stream);
      if (fp8_wire_) group.ex_scales[i]->start(stream);
    }
  const int64_t N = q_c_.dim(0), cols = group_columns();
  for (HeadGroup& group : groups_) {
    for (int i = 0; i < 3; ++i) {
      group.ex[i]->finish(stream);
      if (!fp8_wire_) continue;
      group.ex_scales[i]->finish(stream);
      backend.dequantize_rows(group.arrived[i], group.arrived_scales[i], group.chunk[i].reshape({N, cols}));
    }
    if (R_ == 1)
      backend.joint_attention(group.chunk[0], group.chunk[1], group.chunk[2], group.o, Tensor());
    else
      ring_attention(backend, q_c_, o_c_, lse_c_);  // one group: all Hu heads
    // The group's q, k, v (and their scales) are read, and the Ring has sent k and v: the
    // peers may put the next call's now (one-sided transports).
    for (int i = 0; i < 3; ++i) {
      group.ex[i]->release(stream);
      if (fp8_wire_) group.ex_scales[i]->release(stream);
    }
    // Inverse all-to-all: rows of the group's output go back to their owners.
    group.ex_o->start(stream);
  }
  const Tensor target = o.reshape({n, H * D});
  for (int g = 0; g < groups_in_use_; ++g) {
    HeadGroup& group = groups_[size_t(g)];
    group.ex_o->finish(stream);
    for (int u = 0; u < U_; ++u) {
      const int64_t real = real_columns(u, g);
      if (real > 0) backend.copy(group.gather.rows(u * n, n).cols(0, real), target.cols(u * HD + g * cols, real));
    }
    group.ex_o->release(stream);
  }
}

}  // namespace fresco
