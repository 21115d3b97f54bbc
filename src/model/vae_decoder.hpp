// The FLUX.1 autoencoder's decoder (spec: ../shared/spec/flux-vae-decoder.md) on any Backend,
// for a whole latent or for a band of its rows (patch-parallel decoding).
//
// Activations are channel-major [C, rows, W] in the compute dtype (weights in their stored
// dtype). Only three things couple the rows of different ranks, and they go through a
// RowPartition (src/model/hooks.hpp): the halo row a 3x3 convolution needs from each neighbour,
// the GroupNorm sums (added over ranks on the device, so statistics are those of the whole
// image), and the mid-block attention over all positions (an AttentionStrategy). With LocalRows
// the decoder is the plain single-rank computation.
//
// Memory: every activation lives in one of six slots: three (four when the rows are split, for
// the haloed copies) sized for the largest activation, the rest for the latent resolution where
// the mid-block holds six; allocated when the band's shape changes and reused by every later
// decode of that shape: decode() itself allocates nothing. With the whole image on one rank a
// 3x3 convolution pads its own rows (no haloed copy of its input).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/hooks.hpp"
#include "src/model/vae_config.hpp"

namespace fresco {

class VaeDecoder {
 public:
  // The loaded weights' identity (ModelWeights::identity), for result records.
  const std::string& weights_identity() const { return weights_.identity(); }

  VaeDecoder(VaeConfig config, ModelWeights weights, Backend& backend, DType compute = DType::f32);
  ~VaeDecoder();
  const VaeConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  DType compute_dtype() const { return compute_; }

  // latent: [z_channels, rows, w], this part's rows of the latent (f32 host tensor, in the
  // transformer's latent space; the decoder applies z / scale + shift). Returns conv_out's
  // output [out_ch, rows * upscale, w * upscale] for this part (device tensor in the compute
  // dtype, before the final clamp), valid until the next decode().
  Tensor decode(const Tensor& latent, RowPartition& rows);

 private:
  class Slots;     // the equal-size activation buffers and their leases
  struct Lease;    // one slot in use, shaped as a tensor; returns the slot when it dies
  void prepare(const Tensor& latent, RowPartition& rows);
  Lease conv3(const std::string& name, const Tensor& x);
  Lease conv1(const std::string& name, const Tensor& x);
  // Normalizes x into y (may be x itself).
  void group_norm(const std::string& name, const Tensor& x, const Tensor& y);
  Lease resnet(const std::string& name, const Tensor& x);
  Lease attention_block(const std::string& name, const Tensor& x);
  const Tensor& w(const std::string& name) const { return weights_.get(name); }
  // FRESCO_DECODE_PROFILE=1: a timing event after each part of the decode, printed (device
  // milliseconds per part, on stderr) when decode() ends; it synchronizes there.
  void mark(const std::string& part);
  void print_profile();

  VaeConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  DType compute_;
  std::unique_ptr<Slots> slots_;
  RowPartition* rows_ = nullptr;  // during decode()
  int64_t total_rows_ = 0;        // rows of the whole image at the current level
  int64_t band_rows_ = -1, band_width_ = -1;  // the band shape the arena was laid out for
  int band_parts_ = -1;                       // and the number of parts (halo copies or not)
  Arena arena_;
  bool profile_ = false;
  std::vector<std::pair<std::string, std::unique_ptr<Event>>> marks_;
  Tensor latent_in_;  // [z, rows, w] f32  the band as uploaded
  Tensor sums_;       // [groups, 2] f64   GroupNorm sums (all-reduced in place)
  Tensor zeros_;      // [max C * W]       zero halo rows at the image borders
  // Split bands only (conv3's edge rows): [6 max C * W] the edge block, [3 max C * W] one edge
  // row's input rows, [max C * W] its output row.
  Tensor edge_block_, edge_input_, edge_output_;
};

// (x + 1) / 2 clamped to [0, 1]: the decoder's output as an image. x: f32 host tensor.
Tensor decoded_to_image(const Tensor& x);

}  // namespace fresco
