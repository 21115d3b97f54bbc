#include "src/model/rope.hpp"

#include <algorithm>
#include <cmath>

namespace fresco {

std::vector<PositionId> joint_position_ids(int64_t txt_len, int64_t grid_h, int64_t grid_w) {
  std::vector<PositionId> ids(size_t(txt_len), PositionId{0, 0, 0});
  ids.reserve(size_t(txt_len + grid_h * grid_w));
  for (int64_t i = 0; i < grid_h; ++i)
    for (int64_t j = 0; j < grid_w; ++j) ids.push_back({0.0, double(i), double(j)});
  return ids;
}

std::vector<PositionId> qwen_position_ids(int64_t txt_len, int64_t grid_h, int64_t grid_w) {
  const double start = double(std::max(grid_h / 2, grid_w / 2));
  const int64_t top = (grid_h + 1) / 2, left = (grid_w + 1) / 2;  // ceil: the rows above the centre
  std::vector<PositionId> ids;
  ids.reserve(size_t(txt_len + grid_h * grid_w));
  for (int64_t j = 0; j < txt_len; ++j) ids.push_back({start + double(j), start + double(j), start + double(j)});
  for (int64_t i = 0; i < grid_h; ++i)
    for (int64_t j = 0; j < grid_w; ++j) ids.push_back({0.0, double(i - top), double(j - left)});
  return ids;
}

RopeTables make_rope_tables(const FluxConfig& config, const std::vector<PositionId>& ids) {
  return make_rope_tables(config.axes_dim, config.theta, ids);
}

RopeTables make_rope_tables(const std::array<int, 3>& axes_dim, double theta, const std::vector<PositionId>& ids) {
  const int64_t L = int64_t(ids.size()), P = (axes_dim[0] + axes_dim[1] + axes_dim[2]) / 2;
  RopeTables t{Tensor({L, P}), Tensor({L, P})};
  float* c = t.cos.f32();
  float* s = t.sin.f32();
  for (int64_t l = 0; l < L; ++l) {
    int64_t pair = 0;
    for (int axis = 0; axis < 3; ++axis) {
      const int Da = axes_dim[size_t(axis)];
      for (int k = 0; k < Da / 2; ++k, ++pair) {
        const double omega = std::pow(theta, -2.0 * k / Da);
        const double phi = ids[size_t(l)][size_t(axis)] * omega;
        c[l * P + pair] = float(std::cos(phi));
        s[l * P + pair] = float(std::sin(phi));
      }
    }
  }
  return t;
}

}  // namespace fresco
