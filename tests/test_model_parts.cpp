// Presets, weight tables, the sampler schedule, the counter-based noise and RoPE tables.
#include <gtest/gtest.h>

#include <cmath>

#include "src/core/error.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/noise.hpp"
#include "src/model/qwen_config.hpp"
#include "src/model/rope.hpp"
#include "src/model/sampler.hpp"
#include "src/model/step_flops.hpp"

using namespace fresco;

TEST(Presets, ParameterCounts) {
  // FLUX.1-dev has 11.9 B parameters; schnell lacks the guidance embedder.
  const int64_t dev = flux_parameter_count(flux_preset("flux-dev"));
  EXPECT_NEAR(double(dev), 11.9e9, 0.05e9);
  EXPECT_LT(flux_parameter_count(flux_preset("flux-schnell")), dev);
  const int64_t tiny = flux_parameter_count(flux_preset("flux-tiny"));
  EXPECT_GT(tiny, 100000);
  EXPECT_LT(tiny, 1000000);
  EXPECT_THROW(flux_preset("flux-huge"), InputError);
}

TEST(Presets, TokenLinearWeights) {
  // The weights --dtype fp8 quantizes: the token linears' [N, K] matrices of the weight table.
  for (const char* preset : {"flux-tiny", "flux-dev"}) {
    const FluxConfig c = flux_preset(preset);
    int64_t n = 0;
    for (const auto& s : flux_weight_specs(c)) {
      const std::string& k = s.name;
      const bool token = k.find("_attn.qkv.weight") != std::string::npos || k.find("_attn.proj.weight") != std::string::npos ||
                         k.find("_mlp.0.weight") != std::string::npos || k.find("_mlp.2.weight") != std::string::npos ||
                         k.find(".linear1.weight") != std::string::npos || k.find(".linear2.weight") != std::string::npos;
      if (token) n += shape_numel(s.shape);
    }
    EXPECT_EQ(flux_token_linear_weight_count(c), n) << preset;
  }
  // FLUX.1-dev: 8.6 B of its 11.9 B parameters (the modulation GEMVs hold most of the rest).
  EXPECT_NEAR(double(flux_token_linear_weight_count(flux_preset("flux-dev"))), 8.61e9, 0.01e9);
}

TEST(WeightTable, ReportsEveryProblemAtOnce) {
  const FluxConfig c = flux_preset("flux-tiny");
  std::map<std::string, StoredTensorInfo> found;
  for (const auto& s : flux_weight_specs(c)) found[s.name] = {s.shape, DType::f32, "float32"};
  EXPECT_TRUE(validate_weight_table(c.name, flux_weight_specs(c), found).empty());
  found.erase("img_in.weight");
  found["txt_in.weight"].shape = {1, 2};
  found["txt_in.bias"].dtype.reset();
  found["extra.weight"] = {{3}, DType::f32, "float32"};
  const auto problems = validate_weight_table(c.name, flux_weight_specs(c), found);
  ASSERT_EQ(problems.size(), 4u);
  std::string all;
  for (const auto& p : problems) all += p.text + "\n";
  EXPECT_NE(all.find("missing tensor img_in.weight"), std::string::npos) << all;
  EXPECT_NE(all.find("txt_in.weight has shape [1, 2]"), std::string::npos) << all;
  EXPECT_NE(all.find("txt_in.bias is stored as"), std::string::npos) << all;
  EXPECT_NE(all.find("unexpected tensor extra.weight"), std::string::npos) << all;
}

TEST(Sampler, LinearScheduleWithoutShift) {
  const auto t = flux_timesteps(4, 4096, false);
  ASSERT_EQ(t.size(), 5u);
  const double expect[] = {1.0, 0.75, 0.5, 0.25, 0.0};
  for (int i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(t[size_t(i)], expect[i]);
}

TEST(Sampler, ShiftFollowsTheSpec) {
  // Limg = 4096: mu = 1.15; t' = e^mu / (e^mu + 1/t - 1).
  const auto t = flux_timesteps(2, 4096, true);
  const double e = std::exp(1.15);
  EXPECT_DOUBLE_EQ(t[0], 1.0);
  EXPECT_NEAR(t[1], e / (e + 1.0), 1e-15);
  EXPECT_EQ(t[2], 0.0);
  // Limg = 256: mu = 0.5.
  EXPECT_NEAR(flux_timesteps(4, 256, true)[2], std::exp(0.5) / (std::exp(0.5) + 1.0), 1e-15);
  // Monotonically decreasing.
  const auto s = flux_timesteps(28, 1024, true);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i], s[i - 1]);
  EXPECT_THROW(flux_timesteps(0, 256, true), InputError);
}

TEST(Noise, IndependentOfHowItIsSplit) {
  Tensor whole({1000}), first({400}), second({600});
  fill_normal(whole, 7, RandomStream::initial_noise);
  fill_normal(first, 7, RandomStream::initial_noise, 0, 0);
  fill_normal(second, 7, RandomStream::initial_noise, 0, 400);
  for (int i = 0; i < 400; ++i) ASSERT_EQ(whole.f32()[i], first.f32()[i]);
  for (int i = 0; i < 600; ++i) ASSERT_EQ(whole.f32()[400 + i], second.f32()[i]);
}

TEST(Noise, LooksStandardNormalAndDependsOnSeed) {
  Tensor a({20000}), b({20000});
  fill_normal(a, 1, RandomStream::initial_noise);
  fill_normal(b, 2, RandomStream::initial_noise);
  double mean = 0, var = 0;
  for (int i = 0; i < 20000; ++i) mean += a.f32()[i] / 20000.0;
  for (int i = 0; i < 20000; ++i) var += std::pow(a.f32()[i] - mean, 2) / 20000.0;
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.05);
  EXPECT_NE(a.f32()[0], b.f32()[0]);
}

TEST(Rope, TablesFollowAxisOrder) {
  FluxConfig c = flux_preset("flux-tiny");  // axes (4, 14, 14): 2 + 7 + 7 pairs
  const auto ids = joint_position_ids(2, 3, 4);
  ASSERT_EQ(ids.size(), 14u);
  EXPECT_EQ(ids[2 + 1 * 4 + 3], (PositionId{0, 1, 3}));
  const RopeTables t = make_rope_tables(c, ids);
  const int64_t P = 16, tok = 2 + 1 * 4 + 3;
  // Pair 2 is axis 1, k = 0: phi = p1 = 1; pair 9 is axis 2, k = 0: phi = p2 = 3.
  EXPECT_FLOAT_EQ(t.cos.f32()[tok * P + 2], float(std::cos(1.0)));
  EXPECT_FLOAT_EQ(t.sin.f32()[tok * P + 9], float(std::sin(3.0)));
  // Pair 10 is axis 2, k = 1: omega = theta^(-2/14).
  EXPECT_FLOAT_EQ(t.sin.f32()[tok * P + 10], float(std::sin(3.0 * std::pow(10000.0, -2.0 / 14))));
  // Text tokens sit at the origin: no rotation.
  EXPECT_FLOAT_EQ(t.cos.f32()[0 * P + 5], 1.0f);
}

// ---- Qwen-Image (docs/qwen-image.md) ----------------------------------------------------------

TEST(QwenImage, PresetAndWeightTable) {
  const QwenConfig q = qwen_preset("qwen-image");
  EXPECT_EQ(q.layers, 60);
  EXPECT_EQ(q.head_dim(), 128);
  // About 20.4 B parameters: 60 blocks of 36 d^2 + 30 d + 4 D, plus the embedders and the output.
  EXPECT_NEAR(double(qwen_parameter_count(q)), 20.43e9, 0.01e9);
  int64_t blocks = 0;
  for (const auto& s : qwen_weight_specs(q))
    if (s.name.starts_with("transformer_blocks.")) blocks += shape_numel(s.shape);
  const int64_t d = q.hidden;
  EXPECT_EQ(blocks, 60 * (36 * d * d + 30 * d + 4 * 128));
  // The diffusers keys the model reads, with their checkpoint shapes.
  std::map<std::string, Shape> table;
  for (const auto& s : qwen_weight_specs(q)) table[s.name] = s.shape;
  EXPECT_EQ(table.at("txt_in.weight"), (Shape{3072, 3584}));
  EXPECT_EQ(table.at("txt_norm.weight"), (Shape{3584}));
  EXPECT_EQ(table.at("transformer_blocks.59.attn.norm_added_k.weight"), (Shape{128}));
  EXPECT_EQ(table.at("transformer_blocks.0.img_mlp.net.0.proj.weight"), (Shape{12288, 3072}));
  EXPECT_EQ(table.at("norm_out.linear.weight"), (Shape{6144, 3072}));
  EXPECT_EQ(table.at("proj_out.weight"), (Shape{64, 3072}));
  EXPECT_EQ(qwen_preset("qwen-tiny").in_channels, 64);
  EXPECT_THROW(qwen_preset("qwen-huge"), InputError);
}

TEST(QwenImage, Timesteps) {
  // The pipeline's schedule computed independently (numpy, the scheduler's steps): linspace,
  // exponential shift with mu(Limg), the terminal stretch to 0.02, a final 0.
  const auto t = qwen_timesteps(4, 4096);
  const double want[] = {1.0, 0.7667094558988357, 0.4556138009053854, 0.02, 0.0};
  ASSERT_EQ(t.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(t[i], want[i], 1e-14) << i;
  const auto small = qwen_timesteps(3, 30);  // mu below 0.5: the line is not clamped
  EXPECT_NEAR(small[1], 0.5824685986956708, 1e-14);
  const auto one = qwen_timesteps(1, 4096);
  EXPECT_EQ(one, (std::vector<double>{1.0, 0.0}));
  EXPECT_THROW(qwen_timesteps(0, 4096), InputError);
}

TEST(QwenImage, MsropePositions) {
  // 3 text tokens, a 5 x 4 grid: text on the diagonal from max(5/2, 4/2) = 2; image rows at
  // -3..1 (ceil(5/2) = 3 above the centre), columns at -2..1.
  const auto ids = qwen_position_ids(3, 5, 4);
  ASSERT_EQ(ids.size(), 23u);
  EXPECT_EQ(ids[0], (PositionId{2, 2, 2}));
  EXPECT_EQ(ids[2], (PositionId{4, 4, 4}));
  EXPECT_EQ(ids[3], (PositionId{0, -3, -2}));
  EXPECT_EQ(ids[3 + 4 * 4 + 3], (PositionId{0, 1, 1}));
  // The FLUX tables' rotation with Qwen's axes: pair k of axis a turns by p theta^(-2k/a).
  const RopeTables r = make_rope_tables({8, 12, 12}, 10000.0, {PositionId{0, -3, 2}});
  EXPECT_NEAR(r.cos.f32()[4], std::cos(-3.0), 1e-6);                          // height axis, k = 0
  EXPECT_NEAR(r.sin.f32()[4 + 6 + 1], std::sin(2.0 * std::pow(1e4, -2.0 / 12)), 1e-6);  // width, k = 1
}

TEST(QwenImage, CostStandIn) {
  // The FluxConfig the performance model and memory estimate see (qwen_cost_analog): the same
  // FLOPs up to its pooled embedder's d x d, the same parameters up to 0.1 %.
  const QwenConfig q = qwen_preset("qwen-image");
  const FluxConfig f = qwen_cost_analog(q);
  const double real = qwen_step_flops(q, 256, 4096).total();
  EXPECT_NEAR(flux_step_flops(f, 256, 4096).total() / real, 1.0, 1e-6);
  EXPECT_NEAR(real, 73.13e12, 0.01e12);  // docs/qwen-image.md, "FLOPs of one step"
  EXPECT_NEAR(double(flux_parameter_count(f)) / double(qwen_parameter_count(q)), 1.0, 1e-3);
  EXPECT_EQ(f.depth, 60);
  EXPECT_EQ(f.depth_single, 0);
  EXPECT_EQ(f.vec_in_dim, 0);
}
