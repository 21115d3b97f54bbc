#include "mpi/plans/displaced_attention.hpp"

#include "src/core/error.hpp"

namespace fresco {

DisplacedPatchAttention::DisplacedPatchAttention(Communicator& group, int layers, int heads,
                                                 int head_dim, DisplacedOptions options)
    : group_(group), layers_(layers), heads_(heads), head_dim_(head_dim), options_(options) {
  require_input(options_.warmup_steps >= 1,
                "--warmup-steps must be at least 1: the first step has no earlier activations to reuse");
}

DisplacedPatchAttention::~DisplacedPatchAttention() {
  // Gathers still in flight write into the buffers: complete them before the buffers go.
  for (auto& layer : pending_)
    for (auto& r : layer) r->wait();
}

double DisplacedPatchAttention::buffer_bytes(int layers, int64_t tokens, int64_t hidden, DType stale) {
  const double per_layer = 2.0 * double(tokens) * double(hidden) * double(dtype_size(stale));
  const double working = stale == DType::f32 ? 0.0 : 2.0 * double(tokens) * double(hidden) * 4.0;
  return layers * per_layer + working;
}

void DisplacedPatchAttention::prepare(Backend& backend, const std::vector<SequenceShard>& shards,
                                      int position) {
  FRESCO_ASSERT(int(shards.size()) == group_.size() && position == group_.rank(),
                "displaced attention: one shard per rank of the group, in rank order");
  for (auto& layer : pending_)
    for (auto& r : layer) r->wait();  // leftovers of the previous image's last step
  pending_.clear();
  pending_.resize(size_t(layers_));
  std::vector<size_t> bytes;
  int64_t L = 0;
  const int64_t row = int64_t(heads_) * head_dim_;
  for (int p = 0; p < int(shards.size()); ++p) {
    if (p == position) own_offset_ = L;
    L += shards[size_t(p)].count();
    bytes.push_back(size_t(shards[size_t(p)].count() * row) * dtype_size(options_.stale_dtype));
  }
  own_rows_ = shards[size_t(position)].count();
  row_bytes_ = Displacements::packed(std::move(bytes));
  const Shape kv{L, heads_, head_dim_};
  stale_k_.clear();
  stale_v_.clear();
  for (int l = 0; l < layers_; ++l) {
    stale_k_.push_back(backend.alloc(kv, options_.stale_dtype));
    stale_v_.push_back(backend.alloc(kv, options_.stale_dtype));
  }
  if (options_.stale_dtype != DType::f32) {
    work_k_ = backend.alloc(kv, DType::f32);
    work_v_ = backend.alloc(kv, DType::f32);
  }
  step_ = -1;
  stats_ = {};
}

std::string DisplacedPatchAttention::report() const {
  return "displaced gathers: " + std::to_string(stats_.posted) + " posted, " +
         std::to_string(stats_.outstanding) + " still in flight when the next layer began";
}

void DisplacedPatchAttention::begin_forward() {
  ++step_;
  layer_ = 0;
}

void DisplacedPatchAttention::drive_progress() {
  for (auto& layer : pending_)
    for (auto& r : layer) r->test();
}

void DisplacedPatchAttention::gather(int layer, bool blocking) {
  // In place: this rank's rows of the buffer are its contribution.
  auto& reqs = pending_[size_t(layer)];
  for (const Tensor& buf : {stale_k_[size_t(layer)], stale_v_[size_t(layer)]}) {
    const void* own = static_cast<const char*>(buf.raw()) + row_bytes_.offsets[size_t(group_.rank())];
    reqs.push_back(group_.all_gather_start(own, buf.raw(), row_bytes_));
  }
  if (blocking) {
    for (auto& r : reqs) r->wait();
    reqs.clear();
  } else {
    stats_.posted += 1;
  }
}

void DisplacedPatchAttention::attend(Backend& backend, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& o) {
  // q, k, v, o: [n, H, D] this rank's rows (its patch)
  FRESCO_ASSERT(step_ >= 0 && layer_ < layers_, "displaced attention: begin_forward() missing");
  const int l = layer_++;
  if (l > 0 && !pending_[size_t(l - 1)].empty()) {
    bool done = true;
    for (auto& r : pending_[size_t(l - 1)]) done = r->test() && done;
    stats_.outstanding += !done;
  }
  drive_progress();
  // The previous step's gather of this layer is needed now, and only now.
  for (auto& r : pending_[size_t(l)]) r->wait();
  pending_[size_t(l)].clear();

  const Tensor& sk = stale_k_[size_t(l)];
  const Tensor& sv = stale_v_[size_t(l)];
  backend.convert(k, sk.rows(own_offset_, own_rows_));  // fresh own rows
  backend.convert(v, sv.rows(own_offset_, own_rows_));
  const bool sync = synchronous();
  if (sync) gather(l, /*blocking=*/true);  // every patch fresh: exact

  Tensor keys = sk, values = sv;
  if (options_.stale_dtype != DType::f32) {
    backend.convert(sk, work_k_);
    backend.convert(sv, work_v_);
    backend.convert(k, work_k_.rows(own_offset_, own_rows_));  // own rows at full precision
    backend.convert(v, work_v_.rows(own_offset_, own_rows_));
    keys = work_k_;
    values = work_v_;
  }
  backend.attention(q, keys, values, o, Tensor());
  // Displaced: share this step's fresh rows for the next step, without waiting.
  if (!sync) gather(l, /*blocking=*/false);
}

}  // namespace fresco
