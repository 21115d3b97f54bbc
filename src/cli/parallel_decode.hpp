// Decoding one latent on the ranks of a group: each rank decodes a band of rows
// (GroupRows), and the image's rows are gathered on every rank of the group.
#pragma once

#include "mpi/comm/communicator.hpp"
#include "src/model/vae_decoder.hpp"

namespace fresco {

struct DecodedImage {
  Tensor image;              // f32 [3, H, W] in [0, 1], on every rank of the group
  int64_t non_finite = 0;    // values of the decoder's output that were not finite
  double seconds = 0;        // wall time of this rank's decode
};

// latent: f32 host [16, h, w], the whole latent (every rank of the group has it).
DecodedImage decode_on_group(VaeDecoder& decoder, Communicator& group, const Tensor& latent);

// Rows [first, first + count) of a latent: [C, h, w] (any dtype) -> f32 host [C, count, w].
Tensor latent_band(const Tensor& latent, int64_t first, int64_t count);
// The sum over the group of every rank's `value` (host, for reports).
int64_t sum_over_group(Communicator& group, int64_t value);
// `bytes` bytes of the group leader's `send` into every rank's `recv` (host memory; the other
// ranks' `send` is not read).
void from_leader(Communicator& group, const void* send, void* recv, size_t bytes);

}  // namespace fresco
