// Presets, weight tables, the sampler schedule, the counter-based noise and RoPE tables.
#include <gtest/gtest.h>

#include <cmath>

#include "src/core/error.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/noise.hpp"
#include "src/model/rope.hpp"
#include "src/model/sampler.hpp"

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
