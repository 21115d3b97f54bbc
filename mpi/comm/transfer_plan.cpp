#include "mpi/comm/transfer_plan.hpp"

#include <string>

namespace fresco {
namespace {

char* at(const Tensor& t, size_t offset) { return static_cast<char*>(t.raw()) + offset; }

void check_buffer(const Tensor& t, const std::string& what, const char* role) {
  FRESCO_ASSERT(t.defined(), what + ": " + role + " buffer is undefined");
  FRESCO_ASSERT(t.device() == Device::cuda,
                what + ": a device transport moves GPU memory, but the " + role + " buffer is " + t.describe());
  FRESCO_ASSERT(t.contiguous(), what + ": " + role + " buffer " + t.describe() + " is not contiguous");
}

void check_range(const Tensor& t, size_t offset, size_t bytes, const std::string& what, const char* role) {
  FRESCO_ASSERT(offset + bytes <= t.bytes(), what + ": " + role + " range [" + std::to_string(offset) + ", +" +
                                                 std::to_string(bytes) + ") exceeds " + t.describe());
}

void check_table(const Displacements& d, int size, const std::string& what) {
  FRESCO_ASSERT(int(d.counts.size()) == size && d.offsets.size() == d.counts.size(),
                what + ": one count and offset per rank expected");
}

}  // namespace

double TransferPlan::bytes_sent() const {
  double total = 0;
  for (const PeerTransfer& t : sends) total += double(t.bytes);
  return total;
}

TransferPlan plan_all_to_all(int rank, int size, const Tensor& send, const Displacements& send_d,
                             const Tensor& recv, const Displacements& recv_d) {
  const std::string what = "all-to-all";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  check_table(send_d, size, what);
  check_table(recv_d, size, what);
  TransferPlan plan;
  plan.window = recv;
  for (int p = 0; p < size; ++p) {
    const size_t i = size_t(p);
    check_range(send, send_d.offsets[i], send_d.counts[i], what, "send");
    check_range(recv, recv_d.offsets[i], recv_d.counts[i], what, "receive");
    if (p == rank) continue;
    if (recv_d.counts[i]) plan.receives.push_back({p, at(recv, recv_d.offsets[i]), recv_d.offsets[i], recv_d.counts[i]});
    if (send_d.counts[i]) plan.sends.push_back({p, at(send, send_d.offsets[i]), send_d.offsets[i], send_d.counts[i]});
  }
  const size_t self = size_t(rank);
  FRESCO_ASSERT(send_d.counts[self] == recv_d.counts[self], what + ": the counts for oneself differ");
  plan.local.push_back({at(recv, recv_d.offsets[self]), at(send, send_d.offsets[self]), send_d.counts[self]});
  return plan;
}

TransferPlan plan_send_recv(int rank, int size, const Tensor& send, int dest, const Tensor& recv, int source) {
  const std::string what = "send/recv";
  check_buffer(send, what, "send");
  check_buffer(recv, what, "receive");
  FRESCO_ASSERT(dest >= 0 && dest < size && source >= 0 && source < size,
                what + ": peer out of range (dest " + std::to_string(dest) + ", source " + std::to_string(source) +
                    ", size " + std::to_string(size) + ")");
  TransferPlan plan;
  plan.window = recv;
  if (dest == rank && source == rank) {
    FRESCO_ASSERT(send.bytes() == recv.bytes(),
                  what + " to oneself with different sizes: " + send.describe() + " -> " + recv.describe());
    plan.local.push_back({recv.raw(), send.raw(), send.bytes()});
    return plan;
  }
  FRESCO_ASSERT(dest != rank && source != rank, what + ": a ring step sends to and receives from other ranks");
  if (recv.bytes()) plan.receives.push_back({source, recv.raw(), 0, recv.bytes()});
  if (send.bytes()) plan.sends.push_back({dest, send.raw(), 0, send.bytes()});
  return plan;
}

TransferPlan plan_all_gather(int rank, int size, const Tensor& all, const Displacements& all_d) {
  const std::string what = "all-gather";
  check_buffer(all, what, "gather");
  check_table(all_d, size, what);
  TransferPlan plan;
  plan.window = all;
  const size_t me = size_t(rank);
  for (int p = 0; p < size; ++p) {
    const size_t i = size_t(p);
    check_range(all, all_d.offsets[i], all_d.counts[i], what, "part");
    if (p == rank) continue;
    if (all_d.counts[i]) plan.receives.push_back({p, at(all, all_d.offsets[i]), all_d.offsets[i], all_d.counts[i]});
    if (all_d.counts[me]) plan.sends.push_back({p, at(all, all_d.offsets[me]), all_d.offsets[me], all_d.counts[me]});
  }
  return plan;
}

}  // namespace fresco
