#include "src/model/sampler.hpp"

#include <cmath>

#include "src/core/error.hpp"

namespace fresco {

std::vector<double> flux_timesteps(int steps, int64_t image_tokens, bool shift) {
  require_input(steps > 0, "the number of steps must be positive (got " + std::to_string(steps) + ")");
  std::vector<double> t(size_t(steps) + 1);
  for (int i = 0; i <= steps; ++i) t[size_t(i)] = 1.0 - double(i) / double(steps);
  t[size_t(steps)] = 0.0;
  if (!shift) return t;
  const double mu = 0.5 + (1.15 - 0.5) * double(image_tokens - 256) / (4096.0 - 256.0);
  const double e = std::exp(mu);
  for (double& ti : t)
    if (ti > 0.0) ti = e / (e + (1.0 / ti - 1.0));
  return t;
}

}  // namespace fresco
