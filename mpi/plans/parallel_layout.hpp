// The parallel layout of a run, computed once at set-up (LAMMPS style) and used every step.
//
// The world is split into data-parallel groups of G = U x R ranks; each group computes one image
// at a time. Inside a group, position p = r*U + u: U ranks with the same r form a Ulysses group,
// R ranks with the same u form a Ring group. Ranks are placed in (node, rank) order, so by
// default a Ulysses group is ranks of one node (all-to-all on the fast links) and Ring spans
// nodes. `ranks_per_node` > 0 emulates nodes of that many consecutive ranks (studies, tests).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/emulated_link.hpp"
#include "mpi/comm/transports.hpp"

namespace fresco {

struct LayoutDegrees {
  int ulysses = 1, ring = 1;
  std::string rationale;  // why (automatic choices): lines for the start-up report
  int group_size() const { return ulysses * ring; }
};

// What an automatic choice of degrees sees of the run.
struct LayoutFacts {
  int world_size = 1;
  int ranks_per_node = 1;  // detected or emulated
  int64_t work_items = 1;  // images (a forward has one)
};
// The automatic choice, made outside this layer: the CLI ranks the candidates with the
// performance model (src/runtime/auto_layout.hpp), which this layer may not depend on.
using DegreeChooser = std::function<LayoutDegrees(const LayoutFacts&)>;

struct LayoutRequest {
  int ulysses = 0;         // 0: automatic
  int ring = 0;            // 0: automatic
  int ranks_per_node = 0;  // 0: detect (shared-memory split)
  DegreeChooser choose;    // the automatic choice; empty: the fixed rule of resolve_degrees
  // How the communicators move data (mpi/comm/transports.hpp): auto, mpi, nccl or ipc, and
  // whether the exchanges move GPU memory (the CUDA backend).
  std::string transport = "auto";
  bool device_buffers = false;
  // Emulated slow link between (emulated) nodes, for studies on one machine (--emulate-link).
  LinkEmulation link;
  bool patches = false;  // the degrees are --patches (ulysses = patches, ring 1): errors name it
};

// Degrees chosen for a world: explicit ones checked, automatic ones filled in. `work_items`
// is the number of images (a forward has one). Automatic: `request.choose` when given, else
// the fixed rule: the smallest group that still keeps every rank busy, and Ulysses up to the
// ranks of one node.
LayoutDegrees resolve_degrees(int world_size, int ranks_per_node, const LayoutRequest& request,
                              int64_t work_items);

class ParallelLayout {
 public:
  // Collective over the world.
  ParallelLayout(const MpiSession& mpi, const LayoutRequest& request, int64_t work_items);

  int ulysses() const { return degrees_.ulysses; }
  int ring() const { return degrees_.ring; }
  int group_size() const { return degrees_.group_size(); }
  int groups() const { return groups_; }
  int group_index() const { return group_index_; }
  int position() const { return position_; }  // in the group, 0 .. G-1 (sequence shard order)
  bool group_leader() const { return position_ == 0; }
  // True when every Ulysses group lies within one node.
  bool ulysses_within_nodes() const { return ulysses_within_nodes_; }
  int nodes() const { return nodes_; }

  Communicator& group() const { return *group_comm_; }
  Communicator& ulysses_comm() const { return *ulysses_comm_; }
  Communicator& ring_comm() const { return *ring_comm_; }
  // The longest a wait of any of the three communicators may block (seconds; <= 0: none)
  // before it throws CommTimeout (--comm-timeout).
  void set_deadline(double seconds) const;
  // Whether all three communicators' exchanges can be captured into a CUDA graph.
  bool capturable() const;
  // Device transports: the work queued on `stream` (a replayed step) must complete within the
  // deadline, or the job ends (Communicator::watch).
  void watch(Stream& stream) const;
  // Resets the statistics of the three communicators; sums them.
  void reset_stats() const;
  CommStats stats() const;

  // A few lines for the start-up report (rank 0 prints it); `with_degrees` adds the Ulysses
  // and Ring degrees (meaningful for the sequence method only).
  std::string describe(bool with_degrees = true) const;

 private:
  LayoutDegrees degrees_;
  int groups_ = 1, group_index_ = 0, position_ = 0, nodes_ = 1;
  bool ulysses_within_nodes_ = true;
  std::vector<int> world_ranks_of_group_;  // world rank at each position of this group
  std::unique_ptr<Communicator> group_comm_, ulysses_comm_, ring_comm_;
};

}  // namespace fresco
