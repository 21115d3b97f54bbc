#include "mpi/plans/displaced_attention.hpp"

#include "src/core/error.hpp"

namespace fresco {

DisplacedPatchAttention::DisplacedPatchAttention(Communicator& group, int layers, int heads, int head_dim,
                                                 DisplacedOptions options, DType compute)
    : group_(group), layers_(layers), heads_(heads), head_dim_(head_dim), options_(options), compute_(compute) {
  require_input(options_.warmup_steps >= 1,
                "--warmup-steps must be at least 1: the first step has no earlier activations to reuse");
}

DisplacedPatchAttention::~DisplacedPatchAttention() = default;

double DisplacedPatchAttention::buffer_bytes(int layers, int64_t tokens, int64_t hidden, DType stale,
                                             DType compute) {
  const double scales = stale == DType::e4m3 ? 2.0 * double(tokens) * sizeof(float) : 0.0;
  const double per_layer = 2.0 * double(tokens) * double(hidden) * double(dtype_size(stale)) + scales;
  const double working = stale == compute ? 0.0 : 2.0 * double(tokens) * double(hidden) * double(dtype_size(compute));
  return layers * per_layer + working;
}

void DisplacedPatchAttention::drain(Backend& backend) {
  for (int l = 0; l < int(pending_.size()); ++l) {
    if (!pending_[size_t(l)]) continue;
    each_gather(size_t(l), [&](Exchange& e) { e.finish(backend.stream()); });
    pending_[size_t(l)] = false;
  }
}

void DisplacedPatchAttention::prepare(Backend& backend, const std::vector<SequenceShard>& shards, int position) {
  FRESCO_ASSERT(int(shards.size()) == group_.size() && position == group_.rank(),
                "displaced attention: one shard per rank of the group, in rank order");
  drain(backend);  // the previous image's last gathers write into the buffers
  step_ = -1;
  stats_ = {};
  if (planned_ && position == position_ && shards == shards_) return;  // reuse everything
  shards_ = shards;
  position_ = position;
  tokens_ = 0;
  for (int p = 0; p < int(shards.size()); ++p) {
    if (p == position) own_offset_ = tokens_;
    tokens_ += shards[size_t(p)].count();
  }
  own_rows_ = shards[size_t(position)].count();
  plan(backend);
}

void DisplacedPatchAttention::lay_out(Arena& a) {
  const Shape kv{tokens_, heads_, head_dim_};
  stale_k_.clear();
  stale_v_.clear();
  k_scales_.clear();
  v_scales_.clear();
  for (int l = 0; l < layers_; ++l) {
    stale_k_.push_back(a.take(kv, options_.stale_dtype));
    stale_v_.push_back(a.take(kv, options_.stale_dtype));
    if (fp8()) {
      k_scales_.push_back(a.take({tokens_}, DType::f32));
      v_scales_.push_back(a.take({tokens_}, DType::f32));
    }
  }
  work_k_ = work_v_ = Tensor();
  if (options_.stale_dtype != compute_) {
    work_k_ = a.take(kv, compute_);
    work_v_ = a.take(kv, compute_);
  }
}

void DisplacedPatchAttention::plan(Backend& backend) {
  gather_k_.clear();  // bound to the old layout (idle: drained)
  gather_v_.clear();
  gather_k_scales_.clear();
  gather_v_scales_.clear();
  Arena measure;
  lay_out(measure);
  if (arena_.measuring() || arena_.capacity() < measure.used())
    arena_ = Arena(backend.alloc_storage(std::max(measure.used(), kExchangeAllocationBytes)));  // the only allocation
  else
    arena_.reset();
  lay_out(arena_);

  // Bytes of each rank's rows in one K or V buffer; this rank's part is its contribution.
  const int64_t row = int64_t(heads_) * head_dim_;
  std::vector<size_t> bytes, scale_bytes;
  for (const SequenceShard& s : shards_) {
    bytes.push_back(size_t(s.count() * row) * dtype_size(options_.stale_dtype));
    scale_bytes.push_back(size_t(s.count()) * sizeof(float));
  }
  const Displacements parts = Displacements::packed(std::move(bytes));
  const Displacements scale_parts = Displacements::packed(std::move(scale_bytes));
  for (int l = 0; l < layers_; ++l) {
    gather_k_.push_back(group_.all_gather_in_place(stale_k_[size_t(l)], parts));
    gather_v_.push_back(group_.all_gather_in_place(stale_v_[size_t(l)], parts));
    if (fp8()) {
      gather_k_scales_.push_back(group_.all_gather_in_place(k_scales_[size_t(l)], scale_parts));
      gather_v_scales_.push_back(group_.all_gather_in_place(v_scales_[size_t(l)], scale_parts));
    }
  }
  pending_.assign(size_t(layers_), false);
  planned_ = true;
  ++plan_epoch_;  // graphs captured on the old plan are stale
}

std::string DisplacedPatchAttention::report() const {
  return "displaced gathers: " + std::to_string(stats_.posted) + " posted, " +
         std::to_string(stats_.outstanding) + " still in flight when the next layer began";
}

void DisplacedPatchAttention::begin_forward() {
  ++step_;
  layer_ = 0;
}

void DisplacedPatchAttention::resume_forward(int step, int layers_done) {
  FRESCO_ASSERT(layers_done >= 0 && layers_done <= layers_, "displaced attention: resume at layer " +
                                                                  std::to_string(layers_done));
  step_ = step;
  layer_ = layers_done;
  // With join_each_step every forward starts with nothing in flight and its first layers
  // posted their gathers (displaced steps), whether they ran here or in a replayed graph; without
  // it nothing is captured and the host state is already the forward's own.
  if (options_.join_each_step)
    for (int l = 0; l < layers_; ++l) pending_[size_t(l)] = l < layers_done && !synchronous();
}

void DisplacedPatchAttention::skip_layers(int count) {
  FRESCO_ASSERT(count >= 0 && layer_ + count <= layers_, "displaced attention: skipping past the last layer");
  layer_ += count;
}

void DisplacedPatchAttention::end_forward(Backend& backend) {
  if (options_.join_each_step) drain(backend);
}

void DisplacedPatchAttention::drive_progress() {
  for (int l = 0; l < layers_; ++l)
    if (pending_[size_t(l)]) each_gather(size_t(l), [](Exchange& e) { e.poll(); });
}

void DisplacedPatchAttention::attend(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& o) {
  // q, k, v, o: [n, H, D] this rank's rows (its patch), any row strides
  FRESCO_ASSERT(planned_, "displaced attention: prepare() missing");
  FRESCO_ASSERT(step_ >= 0 && layer_ < layers_, "displaced attention: begin_forward() missing");
  FRESCO_ASSERT(k.dim(0) == own_rows_ && v.dim(0) == own_rows_ && k.dtype() == q.dtype() && v.dtype() == q.dtype(),
                "displaced attention: k " + k.describe() + ", v " + v.describe() + " for " +
                    std::to_string(own_rows_) + " rows of q's dtype");
  if (q.dtype() != compute_) {  // the compute dtype differs from the hint: plan once for it
    FRESCO_ASSERT(layer_ == 0 && step_ == 0, "displaced attention: the compute dtype changed within an image");
    drain(backend);
    compute_ = q.dtype();
    plan(backend);
  }
  Stream& stream = backend.stream();
  const int l = layer_++;
  const size_t li = size_t(l);
  if (l > 0 && pending_[li - 1]) {
    const bool k_done = gather_k_[li - 1]->poll();
    const bool v_done = gather_v_[li - 1]->poll();
    stats_.outstanding += !(k_done && v_done);
  }
  drive_progress();
  // The previous step's gather of this layer is needed now, and only now.
  if (pending_[li]) {
    each_gather(li, [&](Exchange& e) { e.finish(stream); });
    pending_[li] = false;
  }

  const Tensor& sk = stale_k_[li];
  const Tensor& sv = stale_v_[li];
  const int64_t row = int64_t(heads_) * head_dim_;
  if (fp8()) {  // fresh own rows, quantized with their scales
    backend.quantize_rows(k.reshape({own_rows_, row}), sk.rows(own_offset_, own_rows_).reshape({own_rows_, row}),
                          k_scales_[li].rows(own_offset_, own_rows_));
    backend.quantize_rows(v.reshape({own_rows_, row}), sv.rows(own_offset_, own_rows_).reshape({own_rows_, row}),
                          v_scales_[li].rows(own_offset_, own_rows_));
  } else {
    backend.copy(k, sk.rows(own_offset_, own_rows_));  // fresh own rows (in the stale dtype)
    backend.copy(v, sv.rows(own_offset_, own_rows_));
  }
  const bool sync = synchronous();
  if (sync) {  // every patch fresh: exact
    each_gather(li, [&](Exchange& e) { e.start(stream); });
    each_gather(li, [&](Exchange& e) { e.finish(stream); });
  }

  Tensor keys = sk, values = sv;
  if (work_k_.defined()) {  // the attention reads the compute dtype
    if (fp8()) {
      backend.dequantize_rows(sk.reshape({tokens_, row}), k_scales_[li], work_k_.reshape({tokens_, row}));
      backend.dequantize_rows(sv.reshape({tokens_, row}), v_scales_[li], work_v_.reshape({tokens_, row}));
    } else {
      backend.copy(sk, work_k_);
      backend.copy(sv, work_v_);
    }
    backend.copy(k, work_k_.rows(own_offset_, own_rows_));  // own rows exact
    backend.copy(v, work_v_.rows(own_offset_, own_rows_));
    keys = work_k_;
    values = work_v_;
  }
  backend.joint_attention(q, keys, values, o, Tensor());
  // Displaced: share this step's fresh rows for the next step, without waiting. The gather
  // writes the other ranks' rows of the buffer only after the attention above has read them.
  if (!sync) {
    each_gather(li, [&](Exchange& e) { e.start(stream); });
    pending_[li] = true;
    stats_.posted += 1;
  }
}

}  // namespace fresco
