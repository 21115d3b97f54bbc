// The flow-matching Euler schedules of FLUX (spec: "Sampler (flow matching, Euler)") and of
// Qwen-Image (docs/qwen-image.md, "Sampler").
#pragma once

#include <cstdint>
#include <vector>

namespace fresco {

// t_i = linspace(1, 0, steps + 1), optionally shifted with mu(Limg):
// t <- e^mu / (e^mu + (1/t - 1)), mu = 0.5 + (1.15 - 0.5)(Limg - 256)/(4096 - 256).
std::vector<double> flux_timesteps(int steps, int64_t image_tokens, bool shift);

// Qwen-Image's pipeline schedule: sigma_i = linspace(1, 1/steps, steps), shifted by
// e^mu / (e^mu + (1/sigma - 1)) with mu = 0.5 + 0.4 (Limg - 256)/(8192 - 256), then stretched so
// the last sigma is 0.02 (1 - sigma scaled by 0.98 / (1 - sigma_last)), then a final 0.
std::vector<double> qwen_timesteps(int steps, int64_t image_tokens);

}  // namespace fresco
