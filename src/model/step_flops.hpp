// The FLOP count of one FLUX transformer forward, the numerator of every TFLOP/s Fresco
// reports (`fresco bench`). Documented against ../shared/spec/flux-transformer.md ("FLOPs of
// one forward"): a matrix product [M, K] x [K, N] is 2 M N K FLOPs; attention over L tokens is
// 4 L^2 d per block (q k^T and p v, d = H * D), softmax and normalisations not counted.
#pragma once

#include <cstdint>

#include "src/model/flux_config.hpp"

namespace fresco {

struct StepFlops {
  double token_linears = 0;  // GEMMs over the tokens: 24 d^2 L per block (57 blocks for FLUX.1)
                             // plus img_in, txt_in and the final projection
  double attention = 0;      // 4 L^2 d per block
  double vector_linears = 0; // GEMVs on the conditioning vector (embedders, modulations)
  double total() const { return token_linears + attention + vector_linears; }
};

// One forward over `txt_tokens` text and `img_tokens` image tokens (L = txt + img):
//   double block (rows n of each stream, n_img + n_txt = L): qkv 3d^2 + proj d^2 + MLP 2 m d
//     (m = mlp_ratio d = 4d) per row, i.e. 24 d^2 L FLOPs for the block;
//   single block: linear1 (3d + m) d + linear2 (d + m) d = 12 d^2 per row: 24 d^2 L;
//   attention: 4 L^2 d per block; img_in 2 Limg c_in d, txt_in 2 Ltxt c_ctx d, final linear
//   2 Limg d c_in; the vector path (time/guidance/vector embedders, 6 d^2 modulation per stream
//   of a double block, 3 d^2 per single block, 2 d^2 for the final layer) on one row.
// FLUX.1-dev at 1024x1024 (Ltxt 512, Limg 4096): 74.4 TFLOP; at 2048x2048 (Limg 16384): 418 TFLOP.
StepFlops flux_step_flops(const FluxConfig& config, int64_t txt_tokens, int64_t img_tokens);

}  // namespace fresco
