#include "src/model/rope.hpp"

#include <cmath>

namespace fresco {

std::vector<PositionId> joint_position_ids(int64_t txt_len, int64_t grid_h, int64_t grid_w) {
  std::vector<PositionId> ids(size_t(txt_len), PositionId{0, 0, 0});
  ids.reserve(size_t(txt_len + grid_h * grid_w));
  for (int64_t i = 0; i < grid_h; ++i)
    for (int64_t j = 0; j < grid_w; ++j) ids.push_back({0.0, double(i), double(j)});
  return ids;
}

RopeTables make_rope_tables(const FluxConfig& config, const std::vector<PositionId>& ids) {
  const int64_t L = int64_t(ids.size()), P = config.head_dim() / 2;
  RopeTables t{Tensor({L, P}), Tensor({L, P})};
  float* c = t.cos.f32();
  float* s = t.sin.f32();
  for (int64_t l = 0; l < L; ++l) {
    int64_t pair = 0;
    for (int axis = 0; axis < 3; ++axis) {
      const int Da = config.axes_dim[size_t(axis)];
      for (int k = 0; k < Da / 2; ++k, ++pair) {
        const double omega = std::pow(config.theta, -2.0 * k / Da);
        const double phi = ids[size_t(l)][size_t(axis)] * omega;
        c[l * P + pair] = float(std::cos(phi));
        s[l * P + pair] = float(std::sin(phi));
      }
    }
  }
  return t;
}

}  // namespace fresco
