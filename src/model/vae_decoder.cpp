#include "src/model/vae_decoder.hpp"

#include <algorithm>
#include <numeric>

#include "src/core/error.hpp"

namespace fresco {
namespace {
constexpr float kGroupNormEps = 1e-6f;
}

VaeDecoder::VaeDecoder(VaeConfig config, ModelWeights weights, Backend& backend)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(backend) {}

Tensor VaeDecoder::conv3(const std::string& name, const Tensor& x) {
  // x: [Ci, h, W] -> haloed [Ci, h + 2, W] (neighbours' edge rows or zeros) -> y: [Co, h, W]
  const int64_t Ci = x.dim(0), h = x.dim(1), W = x.dim(2);
  const Tensor haloed = backend_.upload(Tensor::zeros({Ci, h + 2, W}));
  backend_.paste_columns(x.reshape({Ci, h * W}), haloed.reshape({Ci, (h + 2) * W}), W);
  rows_->exchange_halo(backend_, haloed);
  const Tensor& weight = w(name + ".weight");
  const Tensor y = backend_.alloc({weight.dim(0), h, W}, DType::f32);
  backend_.conv2d(haloed, weight, w(name + ".bias"), /*pad_rows=*/0, y);
  return y;
}

Tensor VaeDecoder::conv1(const std::string& name, const Tensor& x) {
  const Tensor& weight = w(name + ".weight");
  const Tensor y = backend_.alloc({weight.dim(0), x.dim(1), x.dim(2)}, DType::f32);
  backend_.conv2d(x, weight, w(name + ".bias"), 0, y);
  return y;
}

Tensor VaeDecoder::group_norm(const std::string& name, const Tensor& x) {
  // Statistics of the whole image: this part's sums, added over all parts (in double).
  std::vector<double> sums = backend_.group_sums(x, config_.groups);
  rows_->all_reduce(sums);
  const double count = double(x.dim(0) / config_.groups) * double(total_rows_) * double(x.dim(2));
  const Tensor y = backend_.alloc(x.shape(), DType::f32);
  backend_.group_norm(x, sums, count, kGroupNormEps, w(name + ".weight"), w(name + ".bias"), y);
  return y;
}

Tensor VaeDecoder::resnet(const std::string& name, const Tensor& x) {
  // h = conv2(swish(norm2(conv1(swish(norm1(x)))))); x + h, or nin_shortcut(x) + h
  Tensor h = group_norm(name + ".norm1", x);
  backend_.silu(h, h);
  h = conv3(name + ".conv1", h);
  Tensor h2 = group_norm(name + ".norm2", h);
  backend_.silu(h2, h2);
  h2 = conv3(name + ".conv2", h2);
  const Tensor skip = weights_.has(name + ".nin_shortcut.weight") ? conv1(name + ".nin_shortcut", x) : x;
  backend_.add(skip, h2, h2);
  return h2;
}

Tensor VaeDecoder::attention_block(const std::string& name, const Tensor& x) {
  // x: [C, h, W]; single-head attention over the positions of the whole image.
  const int64_t C = x.dim(0), n = x.dim(1) * x.dim(2);
  const Tensor h = group_norm(name + ".norm", x);
  auto tokens = [&](const char* part) {  // [C, h, W] -> [n, 1, C]
    const Tensor channels = conv1(name + "." + part, h);
    const Tensor t = backend_.alloc({n, 1, C}, DType::f32);
    backend_.transpose(channels.reshape({C, n}), t.reshape({n, C}));
    return t;
  };
  const Tensor q = tokens("q"), k = tokens("k"), v = tokens("v");
  const Tensor o = backend_.alloc({n, 1, C}, DType::f32);
  rows_->attention().attend(backend_, q, k, v, o);
  const Tensor o_channels = backend_.alloc({C, x.dim(1), x.dim(2)}, DType::f32);
  backend_.transpose(o.reshape({n, C}), o_channels.reshape({C, n}));
  const Tensor y = conv1(name + ".proj_out", o_channels);
  backend_.add(x, y, y);
  return y;
}

Tensor VaeDecoder::decode(const Tensor& latent, RowPartition& rows) {
  // latent: [z, r, w] this part's rows
  FRESCO_ASSERT(latent.rank() == 3 && latent.dim(0) == config_.z_channels, "decode: latent " + latent.describe());
  rows_ = &rows;
  const auto& parts = rows.latent_rows();
  FRESCO_ASSERT(parts[size_t(rows.index())] == latent.dim(1), "decode: latent rows differ from the partition");
  total_rows_ = std::accumulate(parts.begin(), parts.end(), int64_t(0));

  Tensor z = latent.to_f32();  // z / scale_factor + shift_factor
  for (int64_t i = 0; i < z.numel(); ++i)
    z.f32()[i] = float(z.f32()[i] / config_.scale_factor + config_.shift_factor);
  Tensor x = conv3("decoder.conv_in", backend_.upload(z));
  x = resnet("decoder.mid.block_1", x);

  // The mid-block attention over every position: each part's positions, in order.
  std::vector<SequenceShard> shards;
  const int64_t w_latent = latent.dim(2);
  for (int64_t r : parts) shards.push_back({0, r * w_latent, 0, 0, 0, r * w_latent});
  rows.attention().prepare(backend_, shards, rows.index());
  x = attention_block("decoder.mid.attn_1", x);
  x = resnet("decoder.mid.block_2", x);

  for (int level = config_.levels() - 1; level >= 0; --level) {
    const std::string p = "decoder.up." + std::to_string(level);
    for (int b = 0; b <= config_.num_res_blocks; ++b) x = resnet(p + ".block." + std::to_string(b), x);
    if (level != 0) {
      const Tensor up = backend_.alloc({x.dim(0), 2 * x.dim(1), 2 * x.dim(2)}, DType::f32);
      backend_.upsample_nearest(x, up);
      total_rows_ *= 2;
      x = conv3(p + ".upsample.conv", up);
    }
  }
  Tensor h = group_norm("decoder.norm_out", x);
  backend_.silu(h, h);
  x = conv3("decoder.conv_out", h);
  rows_ = nullptr;
  return x;
}

Tensor decoded_to_image(const Tensor& x) {
  Tensor image(x.shape());
  const float* in = x.f32();
  for (int64_t i = 0; i < x.numel(); ++i) image.f32()[i] = std::clamp((in[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
  return image;
}

}  // namespace fresco
