// The SDXL U-Net (src/model/sdxl_unet.hpp) against an independent PyTorch reference written from
// the published architecture (tests/golden/make_sdxl_golden.py, sdxl-tiny preset): the
// conditional prediction and the guided one (a negative prompt, guidance 5), on the CPU (label
// unit) and on the CUDA backend where this build has one and a GPU is visible (the *Cuda* tests,
// label gpu; skipped elsewhere). And the full-size table: SDXL base's published parameter count.
//
// Tolerances: f32 against the float64 reference within 1e-5 relative L2 (the f32 arithmetic of a
// few hundred sums is near 1e-7), bf16 (weights and activations) at most twice the error of the
// reference's bf16 eager run (every op's result rounded to bf16) and more than 1e-4 (so the run
// is bf16 indeed): the text encoders' rules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "io/h5_file.hpp"
#include "src/core/difference.hpp"
#include "src/core/error.hpp"
#include "src/model/sdxl_sampler.hpp"
#include "src/model/sdxl_unet.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {
namespace {

const std::string kGolden = FRESCO_GOLDEN_DIR;

double rel_l2(const Tensor& got, const Tensor& ref) { return difference(got.to_f32(), ref).relative_l2; }

std::unique_ptr<Backend> cuda_backend() {
  for (auto& b : available_backends())
    if (b->name() == "cuda") return std::move(b);
  return nullptr;
}

void check_unet(Backend& be, DType dtype, bool guided) {
  const h5::File ref = h5::File::open(kGolden + "/sdxl_tiny_golden.h5");
  const std::optional<DType> as = dtype == DType::f32 ? std::nullopt : std::optional<DType>(dtype);
  SdxlUnet unet(sdxl_preset("sdxl-tiny"), load_weights(kGolden + "/sdxl_tiny_weights.h5", "sdxl-tiny", be, as), be,
                std::make_unique<LocalAttention>(), dtype);
  Conditioning cond;
  cond.txt = ref.read_f32("/txt");
  cond.y = ref.read_f32("/pooled");
  cond.size_cond = ref.read_f32("/size");
  if (guided) {
    cond.negative_txt = ref.read_f32("/negative_txt");
    cond.negative_y = ref.read_f32("/negative_pooled");
  }
  const int64_t gh = ref.read_int_attr("grid_h"), gw = ref.read_int_attr("grid_w");
  unet.set_condition(cond, gh, gw, {}, 0);
  const Tensor tokens = be.upload(ref.read_f32("/tokens"));  // [h w, 4]
  const Tensor eps = be.alloc(tokens.shape(), DType::f32);  // [h w, 4]
  const float host_scalars[2] = {float(double(ref.read_int_attr("timestep")) / 1000.0), 5.0f};
  const Tensor scalars = be.upload(Tensor::from_floats({2}, std::span<const float>(host_scalars, 2)));
  unet.forward(tokens, scalars, eps);
  const Tensor got = be.download(eps);
  const std::string name = guided ? "/eps_guided" : "/eps_cond";
  const Tensor expected = ref.read_f32(name);
  const double err = rel_l2(got, expected);
  const char* what = guided ? "guided" : "conditional";
  if (dtype == DType::f32) {
    std::printf("sdxl-tiny %s f32 on %s: relative L2 %.3e\n", what, be.name().c_str(), err);
    EXPECT_LT(err, 1e-5);
  } else {
    const double naive = rel_l2(ref.read_f32(name + "_bf16"), expected);
    std::printf("sdxl-tiny %s bf16 on %s: relative L2 %.3e (bf16 eager PyTorch %.3e)\n", what, be.name().c_str(),
                err, naive);
    EXPECT_LT(err, 2 * naive);
    EXPECT_GT(err, 1e-4);
  }
  // Again: no new buffer, the same bits.
  const uint64_t before = Storage::created();
  unet.forward(tokens, scalars, eps);
  EXPECT_EQ(Storage::created(), before);
  const Tensor again = be.download(eps);
  EXPECT_EQ(std::memcmp(again.raw(), got.raw(), got.bytes()), 0);
}

TEST(SdxlUnet, ConditionalF32OnCpu) { check_unet(*make_cpu_backend(), DType::f32, false); }
TEST(SdxlUnet, GuidedF32OnCpu) { check_unet(*make_cpu_backend(), DType::f32, true); }
TEST(SdxlUnet, ConditionalBf16OnCpu) { check_unet(*make_cpu_backend(), DType::bf16, false); }
TEST(SdxlUnet, GuidedBf16OnCpu) { check_unet(*make_cpu_backend(), DType::bf16, true); }

TEST(SdxlUnetCuda, Forward) {
  const auto cuda = cuda_backend();
  if (!cuda) GTEST_SKIP() << "no CUDA backend or GPU here";
  for (bool guided : {false, true}) {
    check_unet(*cuda, DType::f32, guided);
    check_unet(*cuda, DType::bf16, guided);
  }
}

// The samplers against the reference's (written in x_t space for DDIM, in sigma space with the
// input scaling for Euler, as their papers and diffusers state them): 4 guided steps from the
// reference's noise on the CPU in f32, and the schedules' timesteps.
void check_sampler(Backend& be, SdxlScheduler scheduler, TimestepSpacing spacing, const std::string& name) {
  const h5::File ref = h5::File::open(kGolden + "/sdxl_tiny_golden.h5");
  SdxlUnet unet(sdxl_preset("sdxl-tiny"), load_weights(kGolden + "/sdxl_tiny_weights.h5", "sdxl-tiny", be), be);
  Conditioning cond;
  cond.txt = ref.read_f32("/txt");
  cond.y = ref.read_f32("/pooled");
  cond.size_cond = ref.read_f32("/size");
  cond.negative_txt = ref.read_f32("/negative_txt");
  cond.negative_y = ref.read_f32("/negative_pooled");
  unet.set_condition(cond, ref.read_int_attr("grid_h"), ref.read_int_attr("grid_w"), {}, 0);
  const int steps = int(ref.read_int_attr("sample_steps"));
  const SdxlSchedule schedule = sdxl_schedule(scheduler, steps, spacing);
  const Tensor expected_t = ref.read_f32(std::string("/timesteps_") + spacing_name(spacing));
  for (int i = 0; i < steps; ++i) EXPECT_EQ(schedule.timesteps[size_t(i)], int(expected_t.f32()[i])) << "step " << i;
  const Tensor tokens = be.upload(ref.read_f32("/noise"));  // [h w, 4]
  sdxl_sample(unet, be, schedule, 5.0, tokens);
  const double err = rel_l2(be.download(tokens), ref.read_f32(name));
  std::printf("sdxl-tiny %s %s, %d guided steps, f32 on %s: relative L2 %.3e\n", scheduler_name(scheduler),
              spacing_name(spacing), steps, be.name().c_str(), err);
  EXPECT_LT(err, 1e-5);
}

TEST(SdxlSampler, DdimOnCpu) {
  check_sampler(*make_cpu_backend(), SdxlScheduler::ddim, TimestepSpacing::leading, "/sample_ddim");
}
TEST(SdxlSampler, EulerLeadingOnCpu) {
  check_sampler(*make_cpu_backend(), SdxlScheduler::euler, TimestepSpacing::leading, "/sample_euler");
}
TEST(SdxlSampler, EulerTrailingOnCpu) {
  check_sampler(*make_cpu_backend(), SdxlScheduler::euler, TimestepSpacing::trailing, "/sample_euler_trailing");
}

// The schedule at 50 steps: SDXL's leading timesteps 981, 961, ..., 1, and DDIM's end.
TEST(SdxlSampler, Schedules) {
  const SdxlSchedule ddim = sdxl_schedule(SdxlScheduler::ddim, 50, TimestepSpacing::leading);
  ASSERT_EQ(ddim.timesteps.size(), 50u);
  EXPECT_EQ(ddim.timesteps.front(), 981);
  EXPECT_EQ(ddim.timesteps.back(), 1);
  const std::vector<double> a = sdxl_alphas_cumprod();
  EXPECT_NEAR(a[0], 1 - 0.00085, 1e-15);
  EXPECT_NEAR(ddim.final_scale, std::sqrt(a[0]), 1e-15);
  const SdxlSchedule euler = sdxl_schedule(SdxlScheduler::euler, 50, TimestepSpacing::trailing);
  EXPECT_EQ(euler.timesteps.front(), 999);
  EXPECT_EQ(euler.sigmas.back(), 0.0);
  EXPECT_THROW(sdxl_schedule(SdxlScheduler::ddim, 50, TimestepSpacing::trailing), InputError);
  EXPECT_THROW(parse_sdxl_scheduler("dpm"), InputError);
}

TEST(SdxlSamplerCuda, Samplers) {
  const auto cuda = cuda_backend();
  if (!cuda) GTEST_SKIP() << "no CUDA backend or GPU here";
  check_sampler(*cuda, SdxlScheduler::ddim, TimestepSpacing::leading, "/sample_ddim");
  check_sampler(*cuda, SdxlScheduler::euler, TimestepSpacing::trailing, "/sample_euler_trailing");
}

// The full-size table holds SDXL base's 2 567 463 684 parameters (docs/sdxl.md), and the tiny
// table the reference's.
TEST(SdxlUnet, WeightTables) {
  EXPECT_EQ(sdxl_parameter_count(sdxl_preset("sdxl")), 2567463684);
  EXPECT_EQ(sdxl_parameter_count(sdxl_preset("sdxl-tiny")), 372388);
  const StepFlops f = sdxl_step_flops(sdxl_preset("sdxl"), 77, 128, 128);
  std::printf("sdxl at 1024x1024 (latent 128x128, 77 text tokens), one branch: %.2f TFLOP (convolutions and "
              "linears %.2f, attention %.2f)\n",
              f.total() / 1e12, f.token_linears / 1e12, f.attention / 1e12);
}

TEST(SdxlUnet, RefusesBadShapes) {
  const auto cpu = make_cpu_backend();
  SdxlUnet unet(sdxl_preset("sdxl-tiny"), random_weights("sdxl-tiny", 1, *cpu, DType::f32), *cpu);
  Conditioning cond;
  cond.txt = Tensor::zeros({7, 24});
  cond.y = Tensor::zeros({20});
  cond.size_cond = Tensor::zeros({6});
  EXPECT_THROW(unet.set_condition(cond, 7, 8, {}, 0), InputError);  // odd side: two levels need even
  cond.y = Tensor::zeros({21});
  EXPECT_THROW(unet.set_condition(cond, 8, 8, {}, 0), InputError);
}

}  // namespace
}  // namespace fresco
