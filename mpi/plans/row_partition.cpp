#include "mpi/plans/row_partition.hpp"

#include <numeric>

#include "src/core/error.hpp"

namespace fresco {

GroupRows::GroupRows(Communicator& group, int64_t latent_rows, int channels_of_attention)
    : group_(group),
      rows_(split_evenly(latent_rows, group.size())),
      single_(MpiCommunicator::self("decoder ulysses")),
      attention_(*single_, group, /*heads=*/1, channels_of_attention) {
  require_input(latent_rows >= group.size(),
                "cannot decode a latent of " + std::to_string(latent_rows) + " rows on " +
                    std::to_string(group.size()) + " ranks: every rank needs at least one row");
}

int64_t GroupRows::first_row() const {
  return std::accumulate(rows_.begin(), rows_.begin() + index(), int64_t(0));
}

void GroupRows::exchange_halo(Backend& backend, const Tensor& x) {
  // x: [C, h + 2, W]; as [C, (h+2) W], row r of every channel is the column block [r W, (r+1) W)
  const int64_t C = x.dim(0), h = x.dim(1) - 2, W = x.dim(2);
  const Tensor flat = x.reshape({C, (h + 2) * W});
  const int me = index(), above = me - 1, below = me + 1;
  struct Side {
    int peer;
    int64_t send_row, recv_row;
  };
  std::vector<Side> sides;
  if (above >= 0) sides.push_back({above, 1, 0});
  if (below < size()) sides.push_back({below, h, h + 1});
  std::vector<Tensor> send, recv;
  std::vector<std::unique_ptr<Request>> requests;
  for (const Side& s : sides) {
    send.push_back(backend.alloc({C, W}, DType::f32));
    recv.push_back(backend.alloc({C, W}, DType::f32));
    backend.copy_columns(flat, s.send_row * W, send.back());
    requests.push_back(group_.send_recv_start(send.back().raw(), send.back().bytes(), s.peer,
                                              recv.back().raw(), recv.back().bytes(), s.peer));
  }
  for (size_t i = 0; i < sides.size(); ++i) {
    requests[i]->wait();
    backend.paste_columns(recv[i], flat, sides[i].recv_row * W);
  }
}

}  // namespace fresco
