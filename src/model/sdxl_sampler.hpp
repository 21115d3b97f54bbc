// SDXL's samplers (docs/sdxl.md, "Sampler"): epsilon prediction on the scaled-linear noise
// schedule of its training (betas 0.00085 .. 0.012 over 1000 steps), DDIM (eta 0) and Euler
// discrete, both run as one Euler loop over x_sigma = x_t / sqrt(alpha_bar_t):
//   x_sigma <- x_sigma + (sigma_next - sigma) eps(x_sigma / sqrt(sigma^2 + 1), t)
// which is deterministic DDIM exactly and Euler discrete by definition; they differ in where the
// last step ends (DDIM at alpha_bar_0, then x_0 = sqrt(alpha_bar_0) x_sigma; Euler at sigma 0)
// and in the timestep spacings they accept.
#pragma once

#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"

namespace fresco {

enum class SdxlScheduler { ddim, euler };
enum class TimestepSpacing { leading, trailing };

// "ddim" | "euler" and "leading" | "trailing" (InputError naming `option` otherwise).
SdxlScheduler parse_sdxl_scheduler(const std::string& name, const std::string& option = "scheduler");
TimestepSpacing parse_timestep_spacing(const std::string& name, const std::string& option = "timestep-spacing");
const char* scheduler_name(SdxlScheduler s);
const char* spacing_name(TimestepSpacing s);

// alpha_bar_t = prod_{s <= t} (1 - beta_s), beta_s = (sqrt(0.00085) + s (sqrt(0.012) - sqrt(0.00085)) / 999)^2,
// t = 0 .. 999.
std::vector<double> sdxl_alphas_cumprod();

struct SdxlSchedule {
  std::vector<int> timesteps;  // [steps] the model's timestep of each step, descending
  std::vector<double> sigmas;  // [steps + 1] sigma of each step's input, then where the last ends
  double init_scale = 1.0;     // x_sigma at step 0 = init_scale * noise
  double final_scale = 1.0;    // x_0 = final_scale * x_sigma after the last step
};

// The schedule of `steps` steps as diffusers' DDIMScheduler / EulerDiscreteScheduler lay it out
// with SDXL's scheduler config (steps_offset 1, set_alpha_to_one false):
//   leading:  t_i = (steps - 1 - i) floor(1000 / steps) + 1
//   trailing: t_i = round_half_even(1000 - i 1000 / steps) - 1 (Euler only)
// sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t). init_scale: sqrt(sigma_0^2 + 1), except
// Euler with trailing spacing, where diffusers starts at sigma_0 itself.
SdxlSchedule sdxl_schedule(SdxlScheduler scheduler, int steps, TimestepSpacing spacing);

// Runs the schedule on `model` (set_condition done; its negative prompt, if any, gives the
// guidance): tokens [n, 4] f32 on the backend's device holds the initial noise and receives x_0.
// Allocates its step buffers once per call; per-step values live in device tables, so the loop
// body reads nothing from the host but the two affine constants of the input and final scaling.
void sdxl_sample(Denoiser& model, Backend& backend, const SdxlSchedule& schedule, double guidance,
                 const Tensor& tokens);

}  // namespace fresco
