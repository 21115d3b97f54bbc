#include "mpi/plans/row_partition.hpp"

#include <numeric>

#include "src/core/error.hpp"

namespace fresco {
namespace {
constexpr size_t kSlotAlignment = Arena::kAlignment;
size_t round_up(size_t bytes) { return (bytes + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment; }
}  // namespace

GroupRows::GroupRows(Communicator& group, int64_t latent_rows, int channels_of_attention)
    : group_(group),
      rows_(split_evenly(latent_rows, group.size())),
      single_(MpiCommunicator::self("decoder ulysses")),
      attention_(*single_, group, /*heads=*/1, channels_of_attention) {
  require_input(latent_rows >= group.size(),
                "cannot decode a latent of " + std::to_string(latent_rows) + " rows on " +
                    std::to_string(group.size()) + " ranks: every rank needs at least one row");
}

GroupRows::~GroupRows() = default;

int64_t GroupRows::first_row() const {
  return std::accumulate(rows_.begin(), rows_.begin() + index(), int64_t(0));
}

void GroupRows::prepare(Backend& backend, int64_t max_row_elements, DType dtype) {
  if (size() == 1) return;  // no neighbours
  const size_t slot = round_up(size_t(max_row_elements) * dtype_size(dtype));
  if (halo_ && slot_bytes_ >= slot) return;  // fits: reuse
  sides_.clear();  // bound to the old block
  // Four slots: send and receive rows for the neighbour above and the one below.
  halo_ = backend.alloc_storage(std::max(4 * slot, kExchangeAllocationBytes));  // IPC maps whole granules
  slot_bytes_ = slot;
}

std::vector<GroupRows::Side>& GroupRows::sides_for(Backend& backend, int64_t C, int64_t W, DType dtype) {
  const ShapeKey key{C, W, dtype};
  auto found = sides_.find(key);
  if (found != sides_.end()) return found->second;
  const size_t bytes = size_t(C * W) * dtype_size(dtype);
  if (!halo_ || slot_bytes_ < bytes) prepare(backend, C * W, dtype);  // wider than prepare() was told
  const size_t slot = slot_bytes_;
  std::vector<Side> sides;
  const int me = index();
  auto add = [&](int peer, bool below, size_t first_slot) {
    Side s;
    s.peer = peer;
    s.below = below;
    s.send = Tensor::from_storage(halo_, first_slot * slot, {C, W}, dtype);
    s.recv = Tensor::from_storage(halo_, (first_slot + 1) * slot, {C, W}, dtype);
    s.exchange = group_.send_recv(s.send, peer, s.recv, peer);
    sides.push_back(std::move(s));
  };
  if (me > 0) add(me - 1, false, 0);
  if (me + 1 < size()) add(me + 1, true, 2);
  return sides_.emplace(key, std::move(sides)).first->second;
}

void GroupRows::exchange_halo(Backend& backend, const Tensor& x) {
  // x: [C, h + 2, W]; as [C, (h+2) W], row r of every channel is the column block [r W, (r+1) W)
  if (size() == 1) return;
  FRESCO_ASSERT(x.rank() == 3 && x.dim(1) >= 3, "exchange_halo: expected [C, rows + 2, W], got " + x.describe());
  const int64_t C = x.dim(0), h = x.dim(1) - 2, W = x.dim(2);
  const Tensor flat = x.reshape({C, (h + 2) * W});
  std::vector<Side>& sides = sides_for(backend, C, W, x.dtype());
  Stream& stream = backend.stream();
  for (Side& s : sides) backend.copy(flat.cols((s.below ? h : 1) * W, W), s.send);
  for (Side& s : sides) s.exchange->start(stream);
  for (Side& s : sides) {
    s.exchange->finish(stream);
    backend.copy(s.recv, flat.cols((s.below ? h + 1 : 0) * W, W));
  }
}

void GroupRows::all_reduce(Backend& backend, const Tensor& sums) {
  group_.all_reduce_sum(sums, backend.stream());
}

}  // namespace fresco
