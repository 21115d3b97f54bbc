// The parallel layout of a run, computed once at set-up (LAMMPS style) and used every step.
//
// The world is split into data-parallel groups of G = U x R ranks; each group computes one image
// at a time. Inside a group, position p = r*U + u: U ranks with the same r form a Ulysses group,
// R ranks with the same u form a Ring group. Ranks are placed in (node, rank) order, so by
// default a Ulysses group is ranks of one node (all-to-all on the fast links) and Ring spans
// nodes. `ranks_per_node` > 0 emulates nodes of that many consecutive ranks (studies, tests).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/comm/mpi_context.hpp"

namespace fresco {

struct LayoutRequest {
  int ulysses = 0;         // 0: automatic
  int ring = 0;            // 0: automatic
  int ranks_per_node = 0;  // 0: detect (shared-memory split)
};

// Degrees chosen for a world: explicit ones checked, automatic ones filled in. `work_items`
// is the number of images (a forward has one): the automatic choice uses the smallest group
// that still keeps every rank busy, and Ulysses up to the ranks of one node.
struct LayoutDegrees {
  int ulysses = 1, ring = 1;
  int group_size() const { return ulysses * ring; }
};
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
  std::unique_ptr<MpiCommunicator> group_comm_, ulysses_comm_, ring_comm_;
};

}  // namespace fresco
