// An emulated slow link between nodes, for studies on one machine (--emulate-link BW,LAT with
// --ranks-per-node). THIS IS AN EMULATION: the bytes still move over the inner transport
// (shared memory); the decorator only delays finish() until a link of the given bandwidth and
// latency would have delivered them, so placement, Torus, Ring and a node-spanning Ulysses can
// be compared where inter-node bandwidth is 10-50x below intra-node, as on real clusters.
//
// The model, per rank (one network interface each, full duplex): an exchange started at t
// that sends S and receives Q bytes to and from members on other nodes queues S on the rank's
// send direction and Q on its receive direction behind earlier exchanges (of any
// communicator sharing the interface), each direction draining at the bandwidth, and
// completes one latency after the later direction drained:
//   send_free = max(t, send_free) + S / bandwidth     (same for receive with Q)
//   done      = max(send_free, receive_free) + latency
// finish() returns no earlier than `done` (the time beyond the inner transport's own wait is
// added to the wait statistics: exposed communication). Exchanges among members of one node,
// and the immediate collectives, pass through undelayed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mpi/comm/communicator.hpp"

namespace fresco {

struct LinkEmulation {
  double bandwidth_gb_per_s = 0;  // GB/s (1e9 bytes per second); <= 0: no emulation
  double latency_us = 0;          // per exchange
  bool enabled() const { return bandwidth_gb_per_s > 0; }
  // "BW_GBps,LATENCY_us" (e.g. "2,20"); "" or "off": none. InputError naming --emulate-link.
  static LinkEmulation parse(const std::string& text);
  std::string describe() const;  // "2 GB/s, 20 us per exchange (emulated)"
};

// One rank's emulated network interface, shared by the communicators of a layout.
class EmulatedNic {
 public:
  using Clock = std::chrono::steady_clock;
  explicit EmulatedNic(LinkEmulation link) : link_(link) {}
  // When an exchange started at `now` that sends and receives these inter-node bytes is done.
  Clock::time_point schedule(Clock::time_point now, double sent_bytes, double received_bytes);
  const LinkEmulation& link() const { return link_; }

 private:
  LinkEmulation link_;
  Clock::time_point send_free_{}, receive_free_{};
};

class EmulatedLinkCommunicator final : public Communicator {
 public:
  // `node_of_rank[r]`: the (emulated) node of rank r of `inner`.
  EmulatedLinkCommunicator(std::unique_ptr<Communicator> inner, std::vector<int> node_of_rank,
                           std::shared_ptr<EmulatedNic> nic);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string describe() const override;
  bool device_memory() const override { return inner_->device_memory(); }
  bool capturable() const override { return false; }  // finish() waits on the host clock
  void set_deadline(double seconds) override;
  CommStats& stats() override { return inner_->stats(); }

  std::unique_ptr<Exchange> all_to_all(const Tensor& send, const Displacements& send_d,
                                       const Tensor& recv, const Displacements& recv_d) override;
  std::unique_ptr<Exchange> send_recv(const Tensor& send, int dest, const Tensor& recv,
                                      int source) override;
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor& all,
                                                const Displacements& all_d) override;
  void all_reduce_sum(const Tensor& x, Stream& stream) override { inner_->all_reduce_sum(x, stream); }
  void host_all_gather(const void* send, void* recv, const Displacements& recv_d) override {
    inner_->host_all_gather(send, recv, recv_d);
  }
  void barrier() override { inner_->barrier(); }
  [[noreturn]] void abort(int exit_code) override;
  void watch(Stream& stream) override { inner_->watch(stream); }

 private:
  bool remote(int r) const { return node_of_rank_[size_t(r)] != node_of_rank_[size_t(rank())]; }
  std::unique_ptr<Exchange> wrap(std::unique_ptr<Exchange> inner, double sent, double received);

  std::unique_ptr<Communicator> inner_;
  std::vector<int> node_of_rank_;
  std::shared_ptr<EmulatedNic> nic_;
};

}  // namespace fresco
