#include "src/model/step_flops.hpp"

namespace fresco {

StepFlops flux_step_flops(const FluxConfig& c, int64_t txt_tokens, int64_t img_tokens) {
  const double d = c.hidden, m = c.mlp_hidden(), L = double(txt_tokens + img_tokens);
  const double Li = double(img_tokens), Lt = double(txt_tokens);
  const double blocks = double(c.depth + c.depth_single);
  StepFlops f;
  // Per token row: a double block's stream 3d^2 + d^2 + 2md, a single block's (3d + m)d + (d + m)d.
  const double double_row = 2 * (3 * d * d + d * d + 2 * m * d);
  const double single_row = 2 * ((3 * d + m) * d + (d + m) * d);
  f.token_linears = c.depth * double_row * L + c.depth_single * single_row * L +
                    2 * Li * c.in_channels * d + 2 * Lt * c.context_in_dim * d + 2 * Li * d * c.in_channels;
  f.attention = blocks * 4 * L * L * d;
  const double embedder = 2 * (256 * d + d * d);  // in_layer [d, 256] + out_layer [d, d]
  f.vector_linears = embedder + (c.guidance_embed ? embedder : 0) + 2 * (c.vec_in_dim * d + d * d) +
                     c.depth * 2 * (2 * 6 * d * d) + c.depth_single * 2 * (3 * d * d) + 2 * (2 * d * d);
  return f;
}

}  // namespace fresco
