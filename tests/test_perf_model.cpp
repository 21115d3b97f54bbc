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

// ---- the automatic layout (rank_layouts) -------------------------------------------------

namespace {

// FLUX.1-dev at `side` x `side` pixels with 512 text tokens, bf16, on `world` ranks.
LayoutSearch dev_search(int world, int ranks_per_node, int64_t images, int64_t side, const MachineModel& machine) {
  LayoutSearch q;
  q.world_size = world;
  q.ranks_per_node = ranks_per_node;
  q.images = images;
  q.txt_tokens = 512;
  q.img_tokens = (side / 16) * (side / 16);
  q.bytes_per_value = 2;
  q.machine_for_group = [machine](int) { return std::optional<MachineModel>(machine); };
  return q;
}

const LayoutCandidate& chosen(const LayoutRanking& r) {
  EXPECT_GE(r.chosen, 0) << "no layout fits";
  return r.candidates.at(size_t(std::max(r.chosen, 0)));
}

}  // namespace

TEST(AutoLayout, OneImageOnFourGpuRanksOfOneNodeUsesThemAllWithUlysses) {
  const FluxConfig dev = flux_preset("flux-dev");
  // 1024^2: all four ranks on the image, Ulysses inside the node (the Ring hides part of its
  // transfers behind attention, so 2 x 2 and 4 x 1 are close).
  const LayoutRanking r = rank_layouts(dev, dev_search(4, 8, 1, 1024, gpu_machine("NVIDIA H200", true)));
  EXPECT_EQ(chosen(r).split.group_size(), 4) << r.explain();
  EXPECT_GE(chosen(r).split.ulysses, 2) << r.explain();
  EXPECT_EQ(chosen(r).groups, 1);
  // 512^2: attention is too short to hide a Ring's transfers: pure Ulysses.
  const LayoutRanking s = rank_layouts(dev, dev_search(4, 8, 1, 512, gpu_machine("NVIDIA H200", true)));
  EXPECT_EQ(chosen(s).split.ulysses, 4) << s.explain();
  EXPECT_EQ(chosen(s).split.ring, 1);
  // Every factorization of 4 was a candidate (24 heads: U = 4 divides them).
  EXPECT_EQ(s.candidates.size(), 3u);
}

TEST(AutoLayout, ABatchOfManyImagesRunsOneImagePerRank) {
  const FluxConfig dev = flux_preset("flux-dev");
  for (const MachineModel& m : {gpu_machine("NVIDIA H200", true), cpu_machine(8)}) {
    const LayoutRanking r = rank_layouts(dev, dev_search(4, 4, 8, 1024, m));
    EXPECT_EQ(chosen(r).split.group_size(), 1) << r.explain();
    EXPECT_EQ(chosen(r).groups, 4);
    EXPECT_EQ(chosen(r).rounds, 2);
    EXPECT_DOUBLE_EQ(chosen(r).batch_step_s, 2 * predict_step(dev, SplitConfig{}, 512, 4096, 2, m).step_s);
  }
  // Two images on four ranks: no group may start idle, so groups of two (or one of four).
  const LayoutRanking two = rank_layouts(dev, dev_search(4, 4, 2, 1024, gpu_machine("NVIDIA H200", true)));
  for (const LayoutCandidate& c : two.candidates) EXPECT_GE(c.split.group_size(), 2);
  EXPECT_EQ(chosen(two).split.group_size(), 2) << two.explain();
  // Five images on four GPU ranks (docs/parallelism.md): one image per rank would leave three
  // ranks idle in the second round; one group of four is predicted faster.
  const LayoutRanking five = rank_layouts(dev, dev_search(4, 8, 5, 1024, gpu_machine("NVIDIA H200", true)));
  EXPECT_EQ(chosen(five).split.group_size(), 4) << five.explain();
  EXPECT_EQ(chosen(five).rounds, 5);
}

TEST(AutoLayout, TwoNodesWithASlowLinkKeepUlyssesInsideANodeAndRingAcross) {
  const FluxConfig dev = flux_preset("flux-dev");
  // 8 GPU ranks on two nodes of 4, 25 GB/s between them.
  const LayoutRanking r = rank_layouts(dev, dev_search(8, 4, 1, 1024, gpu_machine("NVIDIA H200", true)));
  EXPECT_EQ(chosen(r).split.ulysses, 4) << r.explain();
  EXPECT_EQ(chosen(r).split.ring, 2);
  EXPECT_FALSE(spans_nodes(chosen(r).split.ulysses, 4));
  // Ulysses 8 would run its all-to-alls over the slow link: clearly slower.
  for (const LayoutCandidate& c : r.candidates)
    if (c.split.ulysses == 8) EXPECT_GT(c.batch_step_s, 1.2 * chosen(r).batch_step_s) << r.explain();
  // CPU ranks on two emulated nodes of 2 with a slow link between them.
  MachineModel cpu = cpu_machine(1);
  cpu.inter_node_bw = 0.1e9;
  const FluxConfig small = flux_preset("flux-small");  // 4 heads
  LayoutSearch q = dev_search(4, 2, 1, 256, cpu);
  q.txt_tokens = 64;
  q.bytes_per_value = 4;
  const LayoutRanking c = rank_layouts(small, q);
  EXPECT_EQ(chosen(c).name(), "Ulysses 2 x Ring 2") << c.explain();
}

TEST(AutoLayout, NodesThatAGroupDoesNotTileCountAsCrossed) {
  EXPECT_FALSE(spans_nodes(4, 0));   // one node
  EXPECT_FALSE(spans_nodes(4, 8));
  EXPECT_FALSE(spans_nodes(4, 4));
  EXPECT_TRUE(spans_nodes(8, 4));
  EXPECT_TRUE(spans_nodes(4, 6));    // places 4..7 straddle the nodes 0..5 and 6..11
  EXPECT_FALSE(spans_nodes(1, 3));
}

TEST(AutoLayout, UlyssesNeverExceedsTheHeadsAndPaddedHeadsCost) {
  const FluxConfig tiny = flux_preset("flux-tiny");  // 2 heads
  LayoutSearch q = dev_search(4, 4, 1, 64, cpu_machine(1));
  q.txt_tokens = 8;
  const LayoutRanking r = rank_layouts(tiny, q);
  ASSERT_FALSE(r.candidates.empty());
  for (const LayoutCandidate& c : r.candidates) EXPECT_LE(c.split.ulysses, 2) << c.name();
  // FLUX.1-dev's 24 heads over U = 16: padded to 32, a third more attention work than U = 8's 24.
  const FluxConfig dev = flux_preset("flux-dev");
  SplitConfig u16, u8;
  u16.ulysses = 16;
  u8.ulysses = 8;
  u8.ring = 2;
  MachineModel free_links = gpu_machine("NVIDIA H200", true);
  free_links.intra_node_bw = free_links.inter_node_bw = 1e30;
  free_links.latency = 0;
  const double a16 = predict_step(dev, u16, 512, 4096, 2, free_links).compute_s;
  const double a8 = predict_step(dev, u8, 512, 4096, 2, free_links).compute_s;
  const double attention = flux_step_flops(dev, 512, 4096).attention / 16 / free_links.flops_per_second;
  EXPECT_NEAR(a16 - a8, attention * (32.0 / 24.0 - 1.0), 1e-9);
}

TEST(AutoLayout, PatchMethodRanksGroupSizesOnly) {
  const FluxConfig dev = flux_preset("flux-dev");
  LayoutSearch q = dev_search(4, 4, 1, 1024, gpu_machine("NVIDIA H200", true));
  q.method = "patch";
  const LayoutRanking r = rank_layouts(dev, q);
  ASSERT_EQ(r.candidates.size(), 1u);  // one image: only the group of 4
  EXPECT_EQ(chosen(r).name(), "4 patches");
  q.images = 4;
  EXPECT_EQ(chosen(rank_layouts(dev, q)).name(), "1 rank");
}

TEST(AutoLayout, LayoutsThatCannotRunAreNotCandidatesAndNoneMayFit) {
  const FluxConfig dev = flux_preset("flux-dev");
  LayoutSearch q = dev_search(4, 4, 8, 1024, cpu_machine(1));
  // Say one rank's memory holds an image only when split over 4: groups of 4 it is.
  q.machine_for_group = [](int G) { return G == 4 ? std::optional<MachineModel>(cpu_machine(1)) : std::nullopt; };
  const LayoutRanking r = rank_layouts(dev, q);
  EXPECT_EQ(chosen(r).split.group_size(), 4) << r.explain();
  q.machine_for_group = [](int) { return std::optional<MachineModel>(); };
  const LayoutRanking none = rank_layouts(dev, q);
  EXPECT_EQ(none.chosen, -1);
  EXPECT_EQ(none.explain(), "no layout fits");
}

TEST(AutoLayout, ALargerGroupMustBeClearlyFaster) {
  // Links so fast that communication is free: every group size predicts the same batch time,
  // and the smallest group is chosen (one image per rank).
  const FluxConfig dev = flux_preset("flux-dev");
  MachineModel free_links = gpu_machine("NVIDIA H200", true);
  free_links.intra_node_bw = free_links.inter_node_bw = 1e30;
  free_links.latency = 0;
  const LayoutRanking r = rank_layouts(dev, dev_search(4, 4, 4, 1024, free_links));
  EXPECT_EQ(chosen(r).split.group_size(), 1) << r.explain();
  // Five images on four ranks: one rank per image takes two rounds (the second with three
  // ranks idle), a group of four five quarter-rounds: 1.25 against 2 rounds, so it is chosen.
  const LayoutRanking five = rank_layouts(dev, dev_search(4, 4, 5, 1024, free_links));
  EXPECT_EQ(chosen(five).split.group_size(), 4) << five.explain();
  EXPECT_NE(five.explain().find("chosen 1 group(s) x Ulysses"), std::string::npos) << five.explain();
}

// The automatic layout's GPU rate follows the GPU kind and dtype it runs on (measured rates),
// and says when it assumes one.
TEST(PerfModel, GpuMachineKnowsTheGpuKindAndDtype) {
  const MachineModel h100 = gpu_machine("NVIDIA H100 80GB HBM3", true);
  const MachineModel h200 = gpu_machine("NVIDIA H200", true);
  const MachineModel f32 = gpu_machine("NVIDIA H100 80GB HBM3", false);
  const MachineModel other = gpu_machine("NVIDIA A100-SXM4-80GB", true);
  EXPECT_LT(h100.flops_per_second, h200.flops_per_second);
  EXPECT_LT(f32.flops_per_second * 10, h100.flops_per_second);  // f32 on a GPU: SIMT attention, f32 GEMMs
  EXPECT_NE(other.label.find("assumed"), std::string::npos);
  EXPECT_EQ(h100.label.find("assumed"), std::string::npos);
}
