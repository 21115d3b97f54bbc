// The FLUX.1 autoencoder's decoder (spec: ../shared/spec/flux-vae-decoder.md) on any Backend,
// for a whole latent or for a band of its rows (patch-parallel decoding).
//
// Activations are channel-major [C, rows, W]. Only three things couple the rows of different
// ranks, and they go through a RowPartition: the halo row a 3x3 convolution needs from each
// neighbour, the GroupNorm sums (added over ranks, so statistics are those of the whole image),
// and the mid-block attention over all positions (an AttentionStrategy). With LocalRows the
// decoder is the plain single-rank computation.
#pragma once

#include <memory>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {

class RowPartition {
 public:
  virtual ~RowPartition() = default;
  virtual int size() const = 0;
  virtual int index() const = 0;
  // Latent rows of each part, in order.
  virtual const std::vector<int64_t>& latent_rows() const = 0;
  // x: [C, rows + 2, W]: fills row 0 with the last row of the part above and row rows+1 with
  // the first row of the part below (zeros at the image border); rows 1..rows are this part's.
  virtual void exchange_halo(Backend& backend, const Tensor& x) = 0;
  // Sums over all parts, in place.
  virtual void all_reduce(std::vector<double>& values) = 0;
  // The attention of the mid block over all positions of the image (heads = 1, D = channels).
  virtual AttentionStrategy& attention() = 0;
};

// The whole latent on this rank.
class LocalRows final : public RowPartition {
 public:
  explicit LocalRows(int64_t rows) : rows_{rows} {}
  int size() const override { return 1; }
  int index() const override { return 0; }
  const std::vector<int64_t>& latent_rows() const override { return rows_; }
  void exchange_halo(Backend&, const Tensor&) override {}  // borders stay zero
  void all_reduce(std::vector<double>&) override {}
  AttentionStrategy& attention() override { return attention_; }

 private:
  std::vector<int64_t> rows_;
  LocalAttention attention_;
};

class VaeDecoder {
 public:
  VaeDecoder(VaeConfig config, ModelWeights weights, Backend& backend);
  const VaeConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }

  // latent: [z_channels, rows, w], this part's rows of the latent (host tensor, in the
  // transformer's latent space; the decoder applies z / scale + shift). Returns conv_out's
  // output [out_ch, rows * upscale, w * upscale] for this part (device tensor, before the
  // final clamp).
  Tensor decode(const Tensor& latent, RowPartition& rows);

 private:
  Tensor conv3(const std::string& name, const Tensor& x);
  Tensor conv1(const std::string& name, const Tensor& x);
  Tensor group_norm(const std::string& name, const Tensor& x);
  Tensor resnet(const std::string& name, const Tensor& x);
  Tensor attention_block(const std::string& name, const Tensor& x);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }

  VaeConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  RowPartition* rows_ = nullptr;  // during decode()
  int64_t total_rows_ = 0;        // rows of the whole image at the current level
};

// (x + 1) / 2 clamped to [0, 1]: the decoder's output as an image. x: f32 host tensor.
Tensor decoded_to_image(const Tensor& x);

}  // namespace fresco
