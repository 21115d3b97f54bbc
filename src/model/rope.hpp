// Position ids and the 3-axis RoPE angle tables of FLUX (spec: "RoPE (3 axes)") and of
// Qwen-Image's MSRoPE (docs/qwen-image.md, "MSRoPE"): the same rotation, other positions.
#pragma once

#include <array>
#include <vector>

#include "src/core/tensor.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

using PositionId = std::array<double, 3>;

// cat(txt_ids, img_ids): txt_len zero ids, then (0, i, j) for the grid_h x grid_w tokens.
std::vector<PositionId> joint_position_ids(int64_t txt_len, int64_t grid_h, int64_t grid_w);

// Qwen-Image's cat(txt_ids, img_ids): image token (r, c) of the grid at (0, r - ceil(h/2),
// c - ceil(w/2)) (centred), text token j at (S + j, S + j, S + j) with S = max(h/2, w/2)
// rounded down: the diagonal just past the largest image index.
std::vector<PositionId> qwen_position_ids(int64_t txt_len, int64_t grid_h, int64_t grid_w);

struct RopeTables {
  Tensor cos;  // [L, D/2]
  Tensor sin;  // [L, D/2]
};

// Angle phi = p_a * theta^(-2k/D_a) for every token and channel pair, pairs assigned to
// axis 0 first, then 1, then 2; computed in double, stored as f32 on the host.
RopeTables make_rope_tables(const std::array<int, 3>& axes_dim, double theta, const std::vector<PositionId>& ids);
RopeTables make_rope_tables(const FluxConfig& config, const std::vector<PositionId>& ids);

}  // namespace fresco
