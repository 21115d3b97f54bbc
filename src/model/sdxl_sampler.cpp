#include "src/model/sdxl_sampler.hpp"

#include <cfenv>
#include <cmath>

#include "src/core/error.hpp"

namespace fresco {
namespace {
constexpr int kTrainSteps = 1000;
constexpr double kBetaStart = 0.00085, kBetaEnd = 0.012;
constexpr int kStepsOffset = 1;

double sigma_of(double alpha_bar) { return std::sqrt((1.0 - alpha_bar) / alpha_bar); }
}  // namespace

SdxlScheduler parse_sdxl_scheduler(const std::string& name, const std::string& option) {
  if (name == "ddim") return SdxlScheduler::ddim;
  if (name == "euler") return SdxlScheduler::euler;
  throw InputError("option --" + option + ": '" + name + "' is not a scheduler (ddim or euler)");
}

TimestepSpacing parse_timestep_spacing(const std::string& name, const std::string& option) {
  if (name == "leading") return TimestepSpacing::leading;
  if (name == "trailing") return TimestepSpacing::trailing;
  throw InputError("option --" + option + ": '" + name + "' is not a timestep spacing (leading or trailing)");
}

const char* scheduler_name(SdxlScheduler s) { return s == SdxlScheduler::ddim ? "ddim" : "euler"; }
const char* spacing_name(TimestepSpacing s) { return s == TimestepSpacing::leading ? "leading" : "trailing"; }

std::vector<double> sdxl_alphas_cumprod() {
  std::vector<double> a(kTrainSteps);
  const double lo = std::sqrt(kBetaStart), hi = std::sqrt(kBetaEnd);
  double product = 1.0;
  for (int t = 0; t < kTrainSteps; ++t) {
    const double root = lo + (hi - lo) * double(t) / double(kTrainSteps - 1);
    product *= 1.0 - root * root;
    a[size_t(t)] = product;
  }
  return a;
}

SdxlSchedule sdxl_schedule(SdxlScheduler scheduler, int steps, TimestepSpacing spacing) {
  require_input(steps > 0 && steps <= kTrainSteps,
                "the number of steps must be 1 to " + std::to_string(kTrainSteps) + " (got " + std::to_string(steps) + ")");
  require_input(scheduler == SdxlScheduler::euler || spacing == TimestepSpacing::leading,
                "DDIM steps back by 1000 / steps from each timestep: it takes the leading spacing only");
  const std::vector<double> alpha_bar = sdxl_alphas_cumprod();
  SdxlSchedule s;
  if (spacing == TimestepSpacing::leading) {
    const int ratio = kTrainSteps / steps;
    for (int i = 0; i < steps; ++i) s.timesteps.push_back((steps - 1 - i) * ratio + kStepsOffset);
  } else {
    // numpy's round: halves to even, the default rounding mode of nearbyint
    FRESCO_ASSERT(std::fegetround() == FE_TONEAREST, "timestep spacing: the rounding mode is not to-nearest");
    for (int i = 0; i < steps; ++i)
      s.timesteps.push_back(int(std::nearbyint(double(kTrainSteps) - double(i) * kTrainSteps / double(steps))) - 1);
  }
  for (int t : s.timesteps) s.sigmas.push_back(sigma_of(alpha_bar[size_t(t)]));
  if (scheduler == SdxlScheduler::ddim) {
    s.sigmas.push_back(sigma_of(alpha_bar[0]));  // set_alpha_to_one false: the end is alpha_bar_0
    s.final_scale = std::sqrt(alpha_bar[0]);
  } else {
    s.sigmas.push_back(0.0);
  }
  const double first = s.sigmas[0];
  s.init_scale = scheduler == SdxlScheduler::euler && spacing == TimestepSpacing::trailing
                     ? first
                     : std::sqrt(first * first + 1.0);
  return s;
}

void sdxl_sample(Denoiser& model, Backend& backend, const SdxlSchedule& schedule, double guidance,
                 const Tensor& tokens) {
  const int steps = int(schedule.timesteps.size());
  FRESCO_ASSERT(steps > 0 && schedule.sigmas.size() == size_t(steps) + 1, "sdxl_sample: a malformed schedule");
  // The per-step device values: (t / 1000, guidance) for the model, sigma_next - sigma for the step.
  Tensor host_scalars({2 * int64_t(steps)}), host_dsigma({int64_t(steps)});
  for (int i = 0; i < steps; ++i) {
    host_scalars.f32()[2 * i] = float(double(schedule.timesteps[size_t(i)]) / 1000.0);
    host_scalars.f32()[2 * i + 1] = float(guidance);
    host_dsigma.f32()[i] = float(schedule.sigmas[size_t(i) + 1] - schedule.sigmas[size_t(i)]);
  }
  const Tensor scalars = backend.upload(host_scalars);  // [2 steps] f32
  const Tensor dsigma = backend.upload(host_dsigma);    // [steps] f32
  const Tensor input = backend.alloc(tokens.shape(), DType::f32);  // [n, 4] x_t, the model's input
  const Tensor eps = backend.alloc(tokens.shape(), DType::f32);    // [n, 4]
  backend.affine(tokens, float(schedule.init_scale), 0.0f, tokens);  // x_sigma at step 0
  for (int i = 0; i < steps; ++i) {
    const double sigma = schedule.sigmas[size_t(i)];
    backend.affine(tokens, float(1.0 / std::sqrt(sigma * sigma + 1.0)), 0.0f, input);
    model.set_step(i);
    model.forward(input, scalars.rows(2 * i, 2), eps);
    backend.axpy(dsigma.rows(i, 1), eps, tokens);
  }
  if (schedule.final_scale != 1.0) backend.affine(tokens, float(schedule.final_scale), 0.0f, tokens);
  backend.synchronize();  // the host tables go when this returns
}

}  // namespace fresco
