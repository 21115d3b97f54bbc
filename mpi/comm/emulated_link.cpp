#include "mpi/comm/emulated_link.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace fresco {

LinkEmulation LinkEmulation::parse(const std::string& text) {
  LinkEmulation link;
  if (text.empty() || text == "off") return link;
  const std::string usage = "option --emulate-link must be BANDWIDTH_GBps,LATENCY_us with a positive bandwidth "
                            "and a non-negative latency, e.g. 2,20 (got '" + text + "')";
  const size_t comma = text.find(',');
  require_input(comma != std::string::npos, usage);
  try {
    size_t used = 0;
    link.bandwidth_gb_per_s = std::stod(text.substr(0, comma), &used);
    require_input(used == comma, usage);
    const std::string latency = text.substr(comma + 1);
    link.latency_us = std::stod(latency, &used);
    require_input(used == latency.size(), usage);
  } catch (const std::logic_error&) {  // std::stod: not a number, out of range
    throw InputError(usage);
  }
  require_input(std::isfinite(link.bandwidth_gb_per_s) && link.bandwidth_gb_per_s > 0 &&
                    std::isfinite(link.latency_us) && link.latency_us >= 0 && link.latency_us < 1e7,
                usage);
  return link;
}

std::string LinkEmulation::describe() const {
  char text[96];
  std::snprintf(text, sizeof text, "%g GB/s, %g us per exchange (emulated)", bandwidth_gb_per_s, latency_us);
  return text;
}

EmulatedNic::Clock::time_point EmulatedNic::schedule(Clock::time_point now, double sent, double received) {
  using Seconds = std::chrono::duration<double>;
  const double rate = link_.bandwidth_gb_per_s * 1e9;
  auto drain = [&](Clock::time_point& free, double bytes) {
    if (bytes <= 0) return;
    free = std::max(now, free) + std::chrono::duration_cast<Clock::duration>(Seconds(bytes / rate));
  };
  drain(send_free_, sent);
  drain(receive_free_, received);
  Clock::time_point done = now;
  if (sent > 0) done = std::max(done, send_free_);
  if (received > 0) done = std::max(done, receive_free_);
  return done + std::chrono::duration_cast<Clock::duration>(Seconds(link_.latency_us * 1e-6));
}

namespace {

// An exchange whose finish() waits, beyond the inner exchange, until the emulated link is done.
class DelayedExchange final : public Exchange {
 public:
  DelayedExchange(std::unique_ptr<Exchange> inner, Communicator& comm, std::shared_ptr<EmulatedNic> nic,
                  double sent, double received)
      : inner_(std::move(inner)), comm_(comm), nic_(std::move(nic)), sent_(sent), received_(received) {}

  void start(Stream& after) override {
    inner_->start(after);
    done_at_ = nic_->schedule(EmulatedNic::Clock::now(), sent_, received_);
  }

  void finish(Stream& before) override {
    inner_->finish(before);
    const auto now = EmulatedNic::Clock::now();
    if (now < done_at_) {
      std::this_thread::sleep_until(done_at_);
      // The inner transport counted its own wait; the rest is the link's exposed time.
      comm_.stats().wait_seconds += std::chrono::duration<double>(EmulatedNic::Clock::now() - now).count();
    }
  }

  bool poll() override { return inner_->poll() && EmulatedNic::Clock::now() >= done_at_; }
  void release(Stream& after) override { inner_->release(after); }

 private:
  std::unique_ptr<Exchange> inner_;
  Communicator& comm_;
  std::shared_ptr<EmulatedNic> nic_;
  double sent_, received_;  // inter-node bytes of one replay
  EmulatedNic::Clock::time_point done_at_{};
};

}  // namespace

EmulatedLinkCommunicator::EmulatedLinkCommunicator(std::unique_ptr<Communicator> inner, std::vector<int> node_of_rank,
                                                   std::shared_ptr<EmulatedNic> nic)
    : inner_(std::move(inner)), node_of_rank_(std::move(node_of_rank)), nic_(std::move(nic)) {
  FRESCO_ASSERT(int(node_of_rank_.size()) == inner_->size(), "emulated link: one node per rank expected");
  FRESCO_ASSERT(nic_ && nic_->link().enabled(), "emulated link: no link to emulate");
  deadline_seconds_ = inner_->deadline();
}

std::string EmulatedLinkCommunicator::describe() const {
  return inner_->describe() + " (inter-node link " + nic_->link().describe() + ")";
}

void EmulatedLinkCommunicator::abort(int exit_code) {
  inner_->abort(exit_code);
  std::_Exit(exit_code);  // not reached: abort() does not return
}

void EmulatedLinkCommunicator::set_deadline(double seconds) {
  Communicator::set_deadline(seconds);
  inner_->set_deadline(seconds);
}

std::unique_ptr<Exchange> EmulatedLinkCommunicator::wrap(std::unique_ptr<Exchange> inner, double sent,
                                                         double received) {
  if (sent <= 0 && received <= 0) return inner;  // nothing crosses nodes
  return std::make_unique<DelayedExchange>(std::move(inner), *this, nic_, sent, received);
}

std::unique_ptr<Exchange> EmulatedLinkCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                               const Tensor& recv, const Displacements& recv_d) {
  std::unique_ptr<Exchange> inner = inner_->all_to_all(send, send_d, recv, recv_d);  // checks the counts
  double sent = 0, received = 0;
  for (int p = 0; p < size(); ++p)
    if (remote(p)) {
      sent += double(send_d.counts[size_t(p)]);
      received += double(recv_d.counts[size_t(p)]);
    }
  return wrap(std::move(inner), sent, received);
}

std::unique_ptr<Exchange> EmulatedLinkCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv,
                                                              int source) {
  std::unique_ptr<Exchange> inner = inner_->send_recv(send, dest, recv, source);
  return wrap(std::move(inner), remote(dest) ? double(send.bytes()) : 0, remote(source) ? double(recv.bytes()) : 0);
}

std::unique_ptr<Exchange> EmulatedLinkCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  std::unique_ptr<Exchange> inner = inner_->all_gather_in_place(all, all_d);
  double sent = 0, received = 0;
  for (int p = 0; p < size(); ++p)
    if (remote(p)) {
      sent += double(all_d.counts[size_t(rank())]);
      received += double(all_d.counts[size_t(p)]);
    }
  return wrap(std::move(inner), sent, received);
}

}  // namespace fresco
