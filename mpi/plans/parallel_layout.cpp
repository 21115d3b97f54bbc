#include "mpi/plans/parallel_layout.hpp"

#include <algorithm>
#include <numeric>
#include <sstream>

namespace fresco {

LayoutDegrees resolve_degrees(int world, int ranks_per_node, const LayoutRequest& req,
                              int64_t work_items) {
  require_input(req.ulysses >= 0 && req.ring >= 0,
                req.patches ? "--patches must not be negative" : "--ulysses and --ring must not be negative");
  LayoutDegrees d;
  if (req.ulysses > 0 || req.ring > 0) {  // the user's degrees, whatever a chooser would say
    d.ulysses = std::max(req.ulysses, 1);
    d.ring = std::max(req.ring, 1);
  } else if (req.choose) {
    d = req.choose(LayoutFacts{world, std::max(ranks_per_node, 1), std::max<int64_t>(work_items, 1)});
    FRESCO_ASSERT(d.ulysses >= 1 && d.ring >= 1,
                  "the automatic layout chose Ulysses " + std::to_string(d.ulysses) + " x Ring " +
                      std::to_string(d.ring));
  } else {
    // Smallest group size G dividing the world with world / G <= images, so no rank idles.
    int G = world;
    for (int g = 1; g <= world; ++g)
      if (world % g == 0 && int64_t(world / g) <= std::max<int64_t>(work_items, 1)) {
        G = g;
        break;
      }
    d.ulysses = std::gcd(G, std::max(ranks_per_node, 1));  // Ulysses inside a node
    d.ring = G / d.ulysses;
    d.rationale = "automatic layout: the smallest group that keeps every rank busy, Ulysses within a node";
  }
  // Named as the user gave it: --patches G, or --ulysses U x --ring R.
  const std::string degrees = req.patches ? "--patches " + std::to_string(d.group_size())
                                          : "--ulysses " + std::to_string(d.ulysses) + " x --ring " +
                                                std::to_string(d.ring) + " = " + std::to_string(d.group_size());
  require_input(world % d.group_size() == 0,
                degrees + " ranks per image does not divide the " + std::to_string(world) + " ranks of the job");
  return d;
}

ParallelLayout::ParallelLayout(const MpiSession& mpi, const LayoutRequest& req, int64_t work_items) {
  const int world = mpi.size(), me = mpi.rank();
  require_input(req.ranks_per_node >= 0, "--ranks-per-node must not be negative");
  // Node of every rank: emulated blocks of ranks_per_node, or the shared-memory split.
  int my_node = 0;
  if (req.ranks_per_node > 0) {
    my_node = me / req.ranks_per_node;
  } else {
    MPI_Comm node;
    FRESCO_MPI_CHECK(MPI_Comm_split_type(mpi.world(), MPI_COMM_TYPE_SHARED, me, MPI_INFO_NULL, &node));
    int leader = me;  // the node's lowest world rank names it
    FRESCO_MPI_CHECK(MPI_Allreduce(&me, &leader, 1, MPI_INT, MPI_MIN, node));
    FRESCO_MPI_CHECK(MPI_Comm_free(&node));
    my_node = leader;
  }
  std::vector<int> node_of(static_cast<size_t>(world));
  FRESCO_MPI_CHECK(MPI_Allgather(&my_node, 1, MPI_INT, node_of.data(), 1, MPI_INT, mpi.world()));
  std::vector<int> distinct = node_of;
  std::sort(distinct.begin(), distinct.end());
  nodes_ = int(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  const int per_node = req.ranks_per_node > 0 ? req.ranks_per_node : world / nodes_;

  degrees_ = resolve_degrees(world, per_node, req, work_items);
  if (req.ulysses == 0 && req.ring == 0 && req.choose) {
    // A chooser may read node-local facts (cores, memory): rank 0's choice holds everywhere,
    // so that no two ranks build different layouts.
    int chosen[2] = {degrees_.ulysses, degrees_.ring};
    FRESCO_MPI_CHECK(MPI_Bcast(chosen, 2, MPI_INT, 0, mpi.world()));
    degrees_.ulysses = chosen[0];
    degrees_.ring = chosen[1];
  }
  const int G = group_size(), U = ulysses();
  groups_ = world / G;

  // Placement order: by node, then rank; consecutive places form groups, then Ulysses groups.
  std::vector<int> order(static_cast<size_t>(world));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return node_of[size_t(a)] < node_of[size_t(b)]; });
  const int place = int(std::find(order.begin(), order.end(), me) - order.begin());
  group_index_ = place / G;
  position_ = place % G;
  const int u = position_ % U, r = position_ / U;
  for (int p = 0; p < G; ++p) world_ranks_of_group_.push_back(order[size_t(group_index_ * G + p)]);
  for (int q = 0; q < world; q += U)
    for (int i = 1; i < U; ++i)
      if (node_of[size_t(order[size_t(q + i)])] != node_of[size_t(order[size_t(q)])])
        ulysses_within_nodes_ = false;

  // Each split is collective over the world, each transport over its communicator; every
  // rank makes them in this order.
  // With an emulated link, communicators spanning nodes delay their inter-node exchanges; the
  // three share this rank's emulated interface.
  const auto nic = req.link.enabled() ? std::make_shared<EmulatedNic>(req.link) : nullptr;
  auto make = [&](int color, int key, const char* label) {
    std::unique_ptr<MpiCommunicator> members = MpiCommunicator::split(mpi.world(), color, key, label);
    std::vector<int> node_of_member;
    for (int m = 0; m < members->size(); ++m) node_of_member.push_back(node_of[size_t(members->world_rank(m))]);
    std::unique_ptr<Communicator> comm = make_transport(req.transport, req.device_buffers, std::move(members));
    const bool spans_nodes = std::adjacent_find(node_of_member.begin(), node_of_member.end(),
                                                std::not_equal_to<>()) != node_of_member.end();
    if (nic && spans_nodes)
      comm = std::make_unique<EmulatedLinkCommunicator>(std::move(comm), std::move(node_of_member), nic);
    return comm;
  };
  group_comm_ = make(group_index_, position_, "group");
  ulysses_comm_ = make(group_index_ * degrees_.ring + r, u, "ulysses");
  ring_comm_ = make(group_index_ * U + u, r, "ring");
}

bool ParallelLayout::capturable() const {
  return group_comm_->capturable() && ulysses_comm_->capturable() && ring_comm_->capturable();
}

void ParallelLayout::watch(Stream& stream) const {
  group_comm_->watch(stream);
  ulysses_comm_->watch(stream);
  ring_comm_->watch(stream);
}

void ParallelLayout::set_deadline(double seconds) const {
  group_comm_->set_deadline(seconds);
  ulysses_comm_->set_deadline(seconds);
  ring_comm_->set_deadline(seconds);
}

void ParallelLayout::reset_stats() const {
  group_comm_->stats().reset();
  ulysses_comm_->stats().reset();
  ring_comm_->stats().reset();
}

CommStats ParallelLayout::stats() const {
  CommStats s;
  for (const Communicator* c : {group_comm_.get(), ulysses_comm_.get(), ring_comm_.get()}) {
    s.bytes_sent += c->stats().bytes_sent;
    s.wait_seconds += c->stats().wait_seconds;
  }
  return s;
}

std::string ParallelLayout::describe(bool with_degrees) const {
  std::ostringstream s;
  s << "layout: " << groups_ << " data-parallel group(s) of " << group_size() << " rank(s)";
  if (with_degrees) s << ": Ulysses " << ulysses() << " x Ring " << ring();
  s << " on " << nodes_ << " node(s)";
  if (with_degrees && ulysses() > 1)
    s << (ulysses_within_nodes_ ? "; Ulysses groups within nodes"
                                : "; WARNING: Ulysses groups span nodes (all-to-all over the network)");
  if (!degrees_.rationale.empty()) {  // why (automatic layouts), indented under the layout line
    std::istringstream lines(degrees_.rationale);
    for (std::string line; std::getline(lines, line);) s << "\n  " << line;
  }
  s << "\n  group " << group_index_ << " ranks by position:";
  for (int r : world_ranks_of_group_) s << ' ' << r;
  if (group_size() > 1) s << "\n  transport: " << group_comm_->describe();
  return s.str();
}

}  // namespace fresco
