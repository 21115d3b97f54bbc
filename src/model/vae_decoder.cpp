#include "src/model/vae_decoder.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <tuple>

#include "src/core/error.hpp"
#include "src/core/tuning.hpp"

namespace fresco {
namespace {
constexpr float kGroupNormEps = 1e-6f;
// Slots held at once at most: the attention block's x, h, q, k, v and one temporary.
constexpr int kSlotCount = 6;
// Slots held at once above the latent resolution: a resnet's x, its normalised copy and the
// first convolution's output (an upsampling's x, its upsampled copy and the convolution's
// output). Where the rows are split over ranks, a 3x3 convolution redoes its two edge rows
// from small haloed copies (conv3), so a band needs no fourth, haloed, copy of its input.
constexpr int kLargeSlots = 3;
// Rows of the edge block of a split band: [halo above, x0, x1, x(h-2), x(h-1), halo below].
constexpr int64_t kEdgeRows = 6;
}  // namespace

// kSlotCount blocks of device memory, each lent out whole and shaped as needed: a few large
// ones sized for the largest activation (haloed), the rest sized for the latent resolution,
// where the mid-block's attention holds all six. So the peak is about three of the largest
// level's activations, not six, whether the rows are split or not.
class VaeDecoder::Slots {
 public:
  Slots(Backend& backend, const std::vector<size_t>& sizes) {
    for (size_t bytes : sizes) {
      blocks_.push_back(backend.alloc_storage(bytes));
      bytes_.push_back(bytes);
      free_.push_back(true);
    }
  }
  // The smallest free block that holds the tensor.
  std::pair<Tensor, int> acquire(const Shape& shape, DType dtype) {
    const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
    int best = -1;
    for (size_t i = 0; i < blocks_.size(); ++i)
      if (free_[i] && bytes_[i] >= bytes && (best < 0 || bytes_[i] < bytes_[size_t(best)])) best = int(i);
    FRESCO_ASSERT(best >= 0, "decoder: no free activation slot holds " + shape_string(shape));
    free_[size_t(best)] = false;
    return {Tensor::from_storage(blocks_[size_t(best)], 0, shape, dtype), best};
  }
  void release(int i) { free_[size_t(i)] = true; }

 private:
  std::vector<std::shared_ptr<Storage>> blocks_;
  std::vector<size_t> bytes_;
  std::vector<bool> free_;
};

// A slot in use. Move-only; the slot returns to the pool when the lease dies.
struct VaeDecoder::Lease {
  Tensor t;
  Slots* pool = nullptr;
  int slot = -1;
  Lease(Slots& slots, const Shape& shape, DType dtype) : pool(&slots) {
    std::tie(t, slot) = slots.acquire(shape, dtype);
  }
  Lease(Lease&& o) noexcept : t(std::move(o.t)), pool(o.pool), slot(o.slot) { o.slot = -1; }
  Lease& operator=(Lease&& o) noexcept {
    if (this != &o) {
      if (slot >= 0) pool->release(slot);
      t = std::move(o.t);
      pool = o.pool;
      slot = o.slot;
      o.slot = -1;
    }
    return *this;
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (slot >= 0) pool->release(slot);
  }
};

VaeDecoder::VaeDecoder(VaeConfig config, ModelWeights weights, Backend& backend, DType compute)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(backend), compute_(compute) {
  profile_ = tuning::flag(tuning::Switch::decode_profile);
}

void VaeDecoder::mark(const std::string& part) {
  if (!profile_) return;
  marks_.emplace_back(part, backend_.new_timing_event());
  marks_.back().second->record(backend_.stream());
}

void VaeDecoder::print_profile() {
  if (!profile_ || marks_.empty()) return;
  marks_.back().second->synchronize();
  std::string line = "decode profile (ms):";
  for (size_t i = 1; i < marks_.size(); ++i) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " %s %.2f", marks_[i].first.c_str(), marks_[i].second->elapsed_ms(*marks_[i - 1].second));
    line += buf;
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  marks_.clear();
}

VaeDecoder::~VaeDecoder() = default;

void VaeDecoder::prepare(const Tensor& latent, RowPartition& rows) {
  // The largest C * (rows + 2) * W any activation (with its halo rows) has, walking the levels
  // as decode() does; and the largest C * W of one row (a halo row, and conv3's edge rows of a
  // split band, inputs and outputs alike).
  const VaeConfig& c = config_;
  int64_t r = latent.dim(1), W = latent.dim(2);
  size_t most = 0;
  int64_t widest_row = 0;
  auto note = [&](int64_t channels) {
    most = std::max(most, size_t(channels * (r + 2) * W) * dtype_size(compute_));
    widest_row = std::max(widest_row, channels * W);
  };
  note(c.z_channels);
  int64_t channels = c.width(c.levels() - 1);
  note(channels);
  const size_t at_latent = most;  // everything up to the first upsampling (the mid-block included)
  for (int level = c.levels() - 1; level >= 0; --level) {
    note(c.width(level));
    channels = c.width(level);
    if (level != 0) {
      r *= 2;
      W *= 2;
      note(channels);
    }
  }
  note(c.out_ch);
  rows.prepare(backend_, widest_row, compute_);
  if (band_rows_ == latent.dim(1) && band_width_ == latent.dim(2) && band_parts_ == rows.size())
    return;  // same shape: reuse

  std::vector<size_t> sizes(size_t(kSlotCount), at_latent);
  std::fill_n(sizes.begin(), kLargeSlots, most);
  slots_.reset();  // the previous shape's blocks go before the new ones are taken
  slots_ = std::make_unique<Slots>(backend_, sizes);
  auto lay_out = [&](Arena& a) {
    latent_in_ = a.take(latent.shape(), DType::f32);
    sums_ = a.take({c.groups, 2}, DType::f64);
    zeros_ = a.take({widest_row}, compute_);
    if (rows.size() > 1) {  // conv3's edge rows of a split band
      edge_block_ = a.take({kEdgeRows * widest_row}, compute_);
      edge_input_ = a.take({3 * widest_row}, compute_);
      edge_output_ = a.take({widest_row}, compute_);
    }
  };
  Arena measure;
  lay_out(measure);
  arena_ = Arena(backend_.alloc_storage(measure.used()));
  lay_out(arena_);
  const Tensor host_zeros = Tensor::zeros({widest_row}, compute_);
  backend_.copy(host_zeros, zeros_);
  backend_.synchronize();
  band_rows_ = latent.dim(1);
  band_width_ = latent.dim(2);
  band_parts_ = rows.size();
}

VaeDecoder::Lease VaeDecoder::conv3(const std::string& name, const Tensor& x) {
  // x: [Ci, h, W] -> y: [Co, h, W], the rows beyond the band being the neighbours' (or zeros at
  // the image's borders)
  const int64_t Ci = x.dim(0), h = x.dim(1), W = x.dim(2);
  const Tensor& weight = w(name + ".weight");
  const Tensor& bias = w(name + ".bias");
  const int64_t Co = weight.dim(0);
  const Tensor zero_row = zeros_.rows(0, Ci * W).reshape({Ci, W});
  Lease y(*slots_, {Co, h, W}, compute_);
  if (rows_->size() > 1 && h == 1) {  // a one-row band: its haloed copy is small
    const Lease haloed(*slots_, {Ci, 3, W}, compute_);
    const Tensor flat = haloed.t.reshape({Ci, 3 * W});
    backend_.copy(zero_row, flat.cols(0, W));
    backend_.copy(zero_row, flat.cols(2 * W, W));
    backend_.copy(x.reshape({Ci, W}), flat.cols(W, W));
    rows_->exchange_halo(backend_, haloed.t);
    backend_.conv2d(haloed.t, weight, bias, /*pad_rows=*/0, y.t);
    return y;
  }
  // The band convolved as if zeros lay beyond it: exact for the whole image (one part), and
  // for every row of a band but its first and last.
  backend_.conv2d(x, weight, bias, /*pad_rows=*/1, y.t);
  if (rows_->size() == 1) return y;
  // The two edge rows again, with the neighbours' rows: the block [halo above, x0, x1,
  // x(h-2), x(h-1), halo below] exchanges its halos as a band of four rows would (x0 goes up,
  // x(h-1) down), and each edge row is a valid convolution of three of its rows. So a band
  // never holds a haloed copy of its whole input (h >= 2; at h = 2 the middle rows repeat).
  const Tensor block = edge_block_.rows(0, Ci * kEdgeRows * W).reshape({Ci, kEdgeRows, W});
  const Tensor flat = block.reshape({Ci, kEdgeRows * W});
  const Tensor rows_of_x = x.reshape({Ci, h * W});
  backend_.copy(zero_row, flat.cols(0, W));
  backend_.copy(rows_of_x.cols(0, 2 * W), flat.cols(W, 2 * W));
  backend_.copy(rows_of_x.cols((h - 2) * W, 2 * W), flat.cols(3 * W, 2 * W));
  backend_.copy(zero_row, flat.cols(5 * W, W));
  rows_->exchange_halo(backend_, block);
  const Tensor input = edge_input_.rows(0, Ci * 3 * W).reshape({Ci, 3, W});       // [Ci, 3, W]
  const Tensor output = edge_output_.rows(0, Co * W).reshape({Co, 1, W});          // [Co, 1, W]
  const Tensor rows_of_y = y.t.reshape({Co, h * W});
  for (const int64_t edge : {int64_t(0), h - 1}) {  // its three input rows start at block row 0, resp. 3
    backend_.copy(flat.cols((edge == 0 ? 0 : 3) * W, 3 * W), input.reshape({Ci, 3 * W}));
    backend_.conv2d(input, weight, bias, /*pad_rows=*/0, output);
    backend_.copy(output.reshape({Co, W}), rows_of_y.cols(edge * W, W));
  }
  return y;
}

VaeDecoder::Lease VaeDecoder::conv1(const std::string& name, const Tensor& x) {
  const Tensor& weight = w(name + ".weight");
  Lease y(*slots_, {weight.dim(0), x.dim(1), x.dim(2)}, compute_);
  backend_.conv2d(x, weight, w(name + ".bias"), 0, y.t);
  return y;
}

void VaeDecoder::group_norm(const std::string& name, const Tensor& x, const Tensor& y) {
  // Statistics of the whole image: this part's sums, added over all parts (in double).
  backend_.group_sums(x, config_.groups, sums_);
  rows_->all_reduce(backend_, sums_);
  const double count = double(x.dim(0) / config_.groups) * double(total_rows_) * double(x.dim(2));
  backend_.group_norm(x, sums_, count, kGroupNormEps, w(name + ".weight"), w(name + ".bias"), y);
}

VaeDecoder::Lease VaeDecoder::resnet(const std::string& name, const Tensor& x) {
  // h = conv2(swish(norm2(conv1(swish(norm1(x)))))); x + h, or nin_shortcut(x) + h
  Lease h2 = [&] {
    Lease h1 = [&] {
      const Lease normed(*slots_, x.shape(), compute_);
      group_norm(name + ".norm1", x, normed.t);
      backend_.silu(normed.t, normed.t);
      return conv3(name + ".conv1", normed.t);
    }();
    group_norm(name + ".norm2", h1.t, h1.t);
    backend_.silu(h1.t, h1.t);
    return conv3(name + ".conv2", h1.t);
  }();
  if (weights_.has(name + ".nin_shortcut.weight")) {
    const Lease skip = conv1(name + ".nin_shortcut", x);
    backend_.add(skip.t, h2.t, h2.t);
  } else {
    backend_.add(x, h2.t, h2.t);
  }
  return h2;
}

VaeDecoder::Lease VaeDecoder::attention_block(const std::string& name, const Tensor& x) {
  // x: [C, h, W]; single-head attention over the positions of the whole image.
  const int64_t C = x.dim(0), n = x.dim(1) * x.dim(2);
  std::optional<Lease> normed(std::in_place, *slots_, x.shape(), compute_);
  group_norm(name + ".norm", x, normed->t);
  auto tokens = [&](const char* part) {  // [C, h, W] -> [n, 1, C]
    const Lease channels = conv1(name + "." + part, normed->t);
    Lease t(*slots_, {n, 1, C}, compute_);
    backend_.transpose(channels.t.reshape({C, n}), t.t.reshape({n, C}));
    return t;
  };
  Lease o_channels = [&] {
    const Lease q = tokens("q"), k = tokens("k"), v = tokens("v");
    normed.reset();
    const Lease o(*slots_, {n, 1, C}, compute_);
    mark("attn.norm+qkv");
    rows_->attention().attend(backend_, q.t, k.t, v.t, o.t);
    mark("attn.attend");
    Lease oc(*slots_, x.shape(), compute_);
    backend_.transpose(o.t.reshape({n, C}), oc.t.reshape({C, n}));
    return oc;
  }();
  Lease y = conv1(name + ".proj_out", o_channels.t);
  backend_.add(x, y.t, y.t);
  return y;
}

Tensor VaeDecoder::decode(const Tensor& latent, RowPartition& rows) {
  // latent: [z, r, w] this part's rows
  FRESCO_ASSERT(latent.rank() == 3 && latent.dim(0) == config_.z_channels && latent.device() == Device::cpu &&
                    latent.dtype() == DType::f32,
                "decode: latent " + latent.describe());
  const auto& parts = rows.latent_rows();
  FRESCO_ASSERT(parts[size_t(rows.index())] == latent.dim(1), "decode: latent rows differ from the partition");
  prepare(latent, rows);
  rows_ = &rows;
  total_rows_ = std::accumulate(parts.begin(), parts.end(), int64_t(0));

  mark("start");
  backend_.copy(latent, latent_in_);
  Lease x = [&] {  // z / scale_factor + shift_factor, in the compute dtype
    const Lease z(*slots_, latent.shape(), compute_);
    backend_.affine(latent_in_, float(1.0 / config_.scale_factor), float(config_.shift_factor), z.t);
    return conv3("decoder.conv_in", z.t);
  }();
  x = resnet("decoder.mid.block_1", x.t);
  mark("conv_in+mid.block_1");

  // The mid-block attention over every position: each part's positions, in order.
  std::vector<SequenceShard> shards;
  const int64_t w_latent = latent.dim(2);
  for (int64_t r : parts) shards.push_back({0, r * w_latent, 0, 0, 0, r * w_latent});
  rows.attention().prepare(backend_, shards, rows.index());
  x = attention_block("decoder.mid.attn_1", x.t);
  mark("mid.attn_1");
  x = resnet("decoder.mid.block_2", x.t);
  mark("mid.block_2");

  for (int level = config_.levels() - 1; level >= 0; --level) {
    const std::string p = "decoder.up." + std::to_string(level);
    for (int b = 0; b <= config_.num_res_blocks; ++b) x = resnet(p + ".block." + std::to_string(b), x.t);
    mark("up." + std::to_string(level) + ".blocks");
    if (level != 0) {
      const Lease up(*slots_, {x.t.dim(0), 2 * x.t.dim(1), 2 * x.t.dim(2)}, compute_);
      backend_.upsample_nearest(x.t, up.t);
      total_rows_ *= 2;
      x = conv3(p + ".upsample.conv", up.t);
      mark("up." + std::to_string(level) + ".upsample");
    }
  }
  {
    const Lease h(*slots_, x.t.shape(), compute_);
    group_norm("decoder.norm_out", x.t, h.t);
    backend_.silu(h.t, h.t);
    x = conv3("decoder.conv_out", h.t);
  }
  mark("out");
  print_profile();
  rows_ = nullptr;
  return x.t;  // the slot is free again, but nothing runs on it before the next decode()
}

Tensor decoded_to_image(const Tensor& x) {
  const Tensor f = x.to_f32();
  Tensor image(x.shape());
  const float* in = f.f32();
  for (int64_t i = 0; i < x.numel(); ++i) image.f32()[i] = std::clamp((in[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
  return image;
}

}  // namespace fresco
