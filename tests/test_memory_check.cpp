// The memory check of every command (src/runtime/memory_check.hpp) as pure arithmetic: the GPU
// branch cannot run on a CPU machine, so its budget, its estimate against the device memory
// docs/performance.md measured, and the advice of each case are tested here.
#include <gtest/gtest.h>

#include <cstdio>

#include "src/runtime/auto_layout.hpp"
#include "src/runtime/memory_check.hpp"
#include "src/runtime/validation.hpp"

using namespace fresco;

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kH100 = 81559.0 * 1024 * 1024;  // an H100 80GB HBM3's total memory (nvidia-smi)

// FLUX.1-dev (or `model`) at size x size with 512 text tokens, random weights, on `group` ranks.
MemoryCase flux(int64_t size, DType compute, int group = 1, const std::string& model = "flux-dev",
                const std::string& weights = "random:0") {
  MemoryCase c;
  c.config = flux_preset(model);
  c.engine.backend = "cuda";
  c.engine.compute = compute;
  c.plan.set_compute(compute);
  c.weights_path = weights;
  c.image_tokens = (size / 16) * (size / 16);
  c.txt_tokens = 512;
  c.group_size = group;
  return c;
}

MemoryCase patches(int64_t size, int group, DType stale) {
  MemoryCase c = flux(size, DType::bf16, group);
  c.plan.method = ParallelMethod::patch;
  c.plan.displaced.stale_dtype = stale;
  return c;
}

MemoryBudget host(double gib, int ranks = 1) {
  MemoryBudget b;
  b.bytes = gib * kGiB;
  b.ranks_sharing = ranks;
  b.description = "the test's budget";
  return b;
}

// The estimate a GPU rank is checked with: estimate_memory plus the reserve of the context and
// the libraries' workspaces.
double on_gpu(const MemoryCase& c) {
  const MemoryEstimate m = estimate_memory(c.config, weight_bytes_in_memory(c.config, c.engine, c.weights_path),
                                           c.engine.compute, c.image_tokens, c.txt_tokens, c.group_size,
                                           c.plan.method == ParallelMethod::patch, c.plan.displaced.stale_dtype);
  return m.total() + kDeviceReserveBytes;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(MemoryCheck, GpuBudgetIsTheCardsShareLessTheReserve) {
  EXPECT_EQ(ranks_on_device(0, 1, 1), 1);
  EXPECT_EQ(ranks_on_device(0, 4, 2), 2);  // local ranks 0 and 2 on GPU 0
  EXPECT_EQ(ranks_on_device(1, 3, 2), 1);  // local rank 1 alone on GPU 1
  EXPECT_EQ(ranks_on_device(3, 4, 8), 1);
  const MemoryBudget one = device_memory_budget(80 * kGiB, "GPU 0 (test)", 1);
  EXPECT_TRUE(one.device);
  EXPECT_DOUBLE_EQ(one.bytes, 79 * kGiB);
  const MemoryBudget two = device_memory_budget(80 * kGiB, "GPU 0 (test)", 2);
  EXPECT_DOUBLE_EQ(two.bytes, 39 * kGiB);
  EXPECT_TRUE(has(two.description, "GPU 0 (test)") && has(two.description, "shared by 2 ranks")) << two.description;
}

// The estimate against bench's measured device memory in use (context and workspaces included):
// an upper bound, within 2 GiB, for one GPU and for the multi-GPU rows.
TEST(MemoryCheck, EstimateBoundsTheMeasuredDeviceMemory) {
  const struct {
    MemoryCase c;
    double measured_gib;
  } rows[] = {
      {flux(1024, DType::bf16), 23.2},              // one H200
      {flux(2048, DType::bf16), 24.5},              // one H200
      {flux(4096, DType::bf16), 29.6},              // one H100
      {flux(2048, DType::bf16, 2), 24.0},           // Ulysses-2, H200
      {flux(4096, DType::bf16, 4), 25.2},           // Ulysses-4, H100
      {patches(2048, 2, DType::f32), 45.9},         // DistriFusion-2, f32 stale K/V
      {patches(4096, 4, DType::e4m3), 46.9},        // DistriFusion-4, FP8 stale K/V
  };
  for (const auto& r : rows) {
    const double estimate = on_gpu(r.c) / kGiB;
    std::printf("%lld tokens on %d GPU(s): estimate %.1f GiB, measured %.1f GiB\n", (long long)r.c.image_tokens,
                r.c.group_size, estimate, r.measured_gib);
    EXPECT_GE(estimate, r.measured_gib) << r.c.image_tokens << " tokens on " << r.c.group_size;
    EXPECT_LE(estimate, r.measured_gib + 2.0) << r.c.image_tokens << " tokens on " << r.c.group_size;
    EXPECT_EQ(memory_shortfall(r.c, device_memory_budget(kH100, "GPU 0", 1), "x", "--width/--height"), "");
  }
}

TEST(MemoryCheck, WeightsThatDoNotFitAskForSmallerWeightsNotMoreRanks) {
  // `fresco bench` on a 23.5 GiB CPU node: f32 FLUX.1-dev's weights alone are 44 GiB.
  MemoryCase c = flux(1024, DType::f32);
  c.engine.backend = "cpu";
  const std::string why = memory_shortfall(c, host(23.5), "fresco bench: flux-dev", "--width/--height");
  EXPECT_TRUE(has(why, "weights alone do not fit")) << why;
  EXPECT_TRUE(has(why, "use --dtype bf16 (weights 22.2 GiB")) << why;
  EXPECT_TRUE(has(why, "a smaller --model (flux-small")) << why;
  EXPECT_TRUE(has(why, "a node with more memory")) << why;
  EXPECT_FALSE(has(why, "--ulysses") || has(why, "--width/--height")) << why;
  // A weights file fixes the model; on a GPU shared by two ranks, fewer ranks per GPU.
  MemoryCase file = flux(1024, DType::f32, 1, "flux-dev", "no-such-weights.h5");
  MemoryBudget shared = device_memory_budget(80 * kGiB, "GPU 0", 2);
  const std::string gpu = memory_shortfall(file, shared, "image 0", "--width/--height");
  EXPECT_TRUE(has(gpu, "weights alone do not fit") && has(gpu, "--dtype bf16")) << gpu;
  EXPECT_TRUE(has(gpu, "run fewer ranks per GPU")) << gpu;
  EXPECT_FALSE(has(gpu, "--model")) << gpu;
  // Even bf16 weights do not fit 16 GiB: no --dtype advice, the smaller preset instead.
  const std::string small = memory_shortfall(c, host(16), "x", "--width/--height");
  EXPECT_FALSE(has(small, "--dtype")) << small;
  EXPECT_TRUE(has(small, "--model (flux-small")) << small;
}

TEST(MemoryCheck, ActivationsThatDoNotFitAskForSizeRanksOrDtype) {
  // flux-small at 4096x4096 in f32: a few MiB of weights, about 1.3 GiB of activations.
  MemoryCase c = flux(4096, DType::f32, 1, "flux-small");
  c.engine.backend = "cpu";
  const std::string why = memory_shortfall(c, host(1, 2), "image 0 (4096x4096)", "the width/height attributes of p.h5");
  EXPECT_TRUE(has(why, "image 0 (4096x4096) needs about")) << why;
  EXPECT_FALSE(has(why, "weights alone")) << why;
  EXPECT_TRUE(has(why, "lower the width/height attributes of p.h5")) << why;
  EXPECT_TRUE(has(why, "more ranks (--ulysses/--ring)")) << why;
  EXPECT_TRUE(has(why, "--dtype bf16")) << why;
  EXPECT_TRUE(has(why, "run fewer ranks per node")) << why;
  // The same image split over 8 ranks fits.
  c.group_size = 8;
  EXPECT_EQ(memory_shortfall(c, host(1, 2), "x", "--width/--height"), "");
}

TEST(MemoryCheck, StaleBuffersDoNotShrinkWithMoreRanks) {
  // DistriFusion at 4096² with f32 stale K/V asked an H100 for 86.9 GiB (docs/performance.md):
  // refused, with the stale dtype as the way out, not more patches; FP8 stale K/V fit.
  const MemoryBudget gpu = device_memory_budget(kH100, "GPU 0 (H100)", 1);
  const std::string why = memory_shortfall(patches(4096, 2, DType::f32), gpu, "image 0", "--width/--height");
  EXPECT_TRUE(has(why, "--stale-dtype e4m3")) << why;
  EXPECT_FALSE(has(why, "more ranks")) << why;
  EXPECT_EQ(memory_shortfall(patches(4096, 2, DType::e4m3), gpu, "image 0", "--width/--height"), "");
}
