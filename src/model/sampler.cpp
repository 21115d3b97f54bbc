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

std::vector<double> qwen_timesteps(int steps, int64_t image_tokens) {
  require_input(steps > 0, "the number of steps must be positive (got " + std::to_string(steps) + ")");
  constexpr double kBaseShift = 0.5, kMaxShift = 0.9, kBaseTokens = 256, kMaxTokens = 8192, kTerminal = 0.02;
  const double mu = kBaseShift + (kMaxShift - kBaseShift) * (double(image_tokens) - kBaseTokens) / (kMaxTokens - kBaseTokens);
  const double e = std::exp(mu);
  std::vector<double> t(size_t(steps) + 1, 0.0);
  for (int i = 0; i < steps; ++i) {
    const double sigma = steps == 1 ? 1.0 : 1.0 - double(i) * (1.0 - 1.0 / steps) / double(steps - 1);
    t[size_t(i)] = e / (e + (1.0 / sigma - 1.0));
  }
  const double last_gap = 1.0 - t[size_t(steps - 1)];  // 0 for one step: nothing to stretch
  if (last_gap > 0.0)
    for (int i = 0; i < steps; ++i) t[size_t(i)] = 1.0 - (1.0 - t[size_t(i)]) * (1.0 - kTerminal) / last_gap;
  return t;
}

}  // namespace fresco
