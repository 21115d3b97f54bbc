// The performance model (src/model/perf_model.hpp) against the numbers docs/parallelism.md and
// the BRIEF derive by hand.
#include <gtest/gtest.h>

#include "src/model/perf_model.hpp"

using namespace fresco;

TEST(PerfModel, BytesPerStepMatchTheParallelismDoc) {
  const FluxConfig dev = flux_preset("flux-dev");
  SplitConfig ulysses;
  ulysses.ulysses = 4;
  // 57 layers * 4 B * 1152 rows * 3072 * 3 = 2.4 GB per step and rank
  EXPECT_NEAR(step_bytes(dev, ulysses, 512, 4096, 4).ulysses, 57.0 * 4 * 1152 * 3072 * 3, 1.0);
  SplitConfig ring;
  ring.ring = 4;
  EXPECT_NEAR(step_bytes(dev, ring, 512, 4096, 4).ring, 57.0 * 4 * 1152 * 3072 * 6, 1.0);
  EXPECT_EQ(step_bytes(dev, SplitConfig{}, 512, 4096, 4).total(), 0.0);  // one rank sends nothing
  SplitConfig patch;
  patch.method = "patch";
  patch.patches = 2;
  EXPECT_NEAR(step_bytes(dev, patch, 512, 4096, 2).patch, 57.0 * 2 * 2 * 2304 * 3072 * 1, 1.0);
}

TEST(PerfModel, OneRankIsTheComputeFloor) {
  const FluxConfig dev = flux_preset("flux-dev");
  MachineModel h100;
  h100.flops_per_second = 750e12;  // the BRIEF's floor: 99 ms at 1024x1024
  const StepPrediction p = predict_step(dev, SplitConfig{}, 512, 4096, 2, h100);
  EXPECT_NEAR(p.step_s, 0.099, 0.001);
  EXPECT_EQ(p.exposed_s, 0.0);
}

TEST(PerfModel, CommunicationAcrossNodesCostsMoreAndRingHidesBehindAttention) {
  const FluxConfig dev = flux_preset("flux-dev");
  MachineModel m;
  m.flops_per_second = 750e12;
  SplitConfig one_node;
  one_node.ulysses = 8;
  SplitConfig two_nodes = one_node;
  two_nodes.ranks_per_node = 4;  // Ulysses 8 spans two nodes of 4
  const auto a = predict_step(dev, one_node, 512, 4096, 2, m);
  const auto b = predict_step(dev, two_nodes, 512, 4096, 2, m);
  EXPECT_LT(a.step_s, b.step_s);
  EXPECT_NEAR(a.compute_s, 0.099 / 8, 0.001);
  // Ring 2 at 2048x2048 on NVLink: the K/V transfer hides behind the attention.
  SplitConfig ring;
  ring.ring = 2;
  const auto r = predict_step(dev, ring, 512, 16384, 2, m);
  EXPECT_GT(r.comm_s, 0.0);
  EXPECT_EQ(r.exposed_s, 0.0);
  EXPECT_NEAR(r.step_s, r.compute_s, 1e-12);
}
