// The automatic layout through ParallelLayout's degree resolution: the performance model's
// ranking (src/model/perf_model.hpp) as the LayoutRequest's chooser, as the CLI wires it
// (src/cli/auto_layout.cpp), and the user's explicit degrees winning over any chooser.
// Links the model and the plans layers (which never link each other); no MPI run needed.
#include <gtest/gtest.h>

#include "mpi/plans/parallel_layout.hpp"
#include "src/model/perf_model.hpp"

using namespace fresco;

namespace {

// FLUX.1-dev at 1024^2 (512 text tokens, bf16) on GPU ranks: the model's choice as a chooser.
// `calls` counts how often the layout asked.
DegreeChooser dev_chooser(int* calls) {
  return [calls](const LayoutFacts& facts) {
    ++*calls;
    LayoutSearch q;
    q.world_size = facts.world_size;
    q.ranks_per_node = facts.ranks_per_node;
    q.images = facts.work_items;
    q.txt_tokens = 512;
    q.img_tokens = 4096;
    q.bytes_per_value = 2;
    q.machine_for_group = [](int) { return std::optional<MachineModel>(gpu_machine("NVIDIA H200", true)); };
    const LayoutRanking r = rank_layouts(flux_preset("flux-dev"), q);
    const LayoutCandidate& c = r.candidates.at(size_t(r.chosen));
    LayoutDegrees d;
    d.ulysses = c.split.ulysses;
    d.ring = c.split.ring;
    d.rationale = r.explain();
    return d;
  };
}

LayoutRequest request(int ulysses, int ring, DegreeChooser choose) {
  LayoutRequest r;
  r.ulysses = ulysses;
  r.ring = ring;
  r.choose = std::move(choose);
  return r;
}

}  // namespace

TEST(AutoLayoutResolution, TheChooserDecidesWhenNoDegreeIsGiven) {
  int calls = 0;
  // Two nodes of 4 GPU ranks, one image: Ulysses inside the nodes, Ring across.
  LayoutDegrees d = resolve_degrees(8, 4, request(0, 0, dev_chooser(&calls)), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(d.ulysses, 4);
  EXPECT_EQ(d.ring, 2);
  EXPECT_NE(d.rationale.find("chosen 1 group(s) x Ulysses 4 x Ring 2"), std::string::npos) << d.rationale;
  EXPECT_NE(d.rationale.find("performance model"), std::string::npos);
  // Eight images on the same ranks: one image per rank.
  d = resolve_degrees(8, 4, request(0, 0, dev_chooser(&calls)), 8);
  EXPECT_EQ(d.group_size(), 1);
}

TEST(AutoLayoutResolution, ExplicitDegreesAreHonouredAndTheChooserIsNotAsked) {
  int calls = 0;
  LayoutDegrees d = resolve_degrees(8, 4, request(2, 1, dev_chooser(&calls)), 1);  // --ulysses 2
  EXPECT_EQ(d.ulysses, 2);
  EXPECT_EQ(d.ring, 1);  // 4 data-parallel groups, though the model would take all 8 ranks
  d = resolve_degrees(8, 4, request(0, 8, dev_chooser(&calls)), 1);  // only --ring given
  EXPECT_EQ(d.ulysses, 1);
  EXPECT_EQ(d.ring, 8);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(d.rationale.empty());
  // A product that does not divide the world is still refused, chooser or not.
  EXPECT_THROW(resolve_degrees(8, 4, request(3, 1, dev_chooser(&calls)), 1), InputError);
}

TEST(AutoLayoutResolution, WithoutAChooserTheFixedRuleStays) {
  const LayoutDegrees d = resolve_degrees(8, 4, LayoutRequest{}, 1);
  EXPECT_EQ(d.ulysses, 4);  // gcd(8, 4 ranks per node)
  EXPECT_EQ(d.ring, 2);
  EXPECT_EQ(resolve_degrees(8, 4, LayoutRequest{}, 2).group_size(), 4);
  EXPECT_NE(d.rationale.find("smallest group"), std::string::npos);
}
