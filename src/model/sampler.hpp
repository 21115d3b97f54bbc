// The flow-matching Euler sampler of FLUX (spec: "Sampler (flow matching, Euler)").
#pragma once

#include <cstdint>
#include <vector>

namespace fresco {

// t_i = linspace(1, 0, steps + 1), optionally shifted with mu(Limg):
// t <- e^mu / (e^mu + (1/t - 1)), mu = 0.5 + (1.15 - 0.5)(Limg - 256)/(4096 - 256).
std::vector<double> flux_timesteps(int steps, int64_t image_tokens, bool shift);

}  // namespace fresco
