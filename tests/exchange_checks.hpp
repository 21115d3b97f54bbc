// The checks every host transport's exchanges must pass (MPI in test_communicator, UCX in
// test_inter_node), in the nccl-tests manner: each rank fills what it sends with values that
// encode (sender, receiver, index, round), so misplaced or stale data is detected, and checks
// what arrives against what it can predict. Each plan is replayed over several rounds.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "mpi/comm/communicator.hpp"

namespace fresco::testing {

// A value that encodes (sender, receiver, index, round).
inline float tag(int from, int to, int i, int round = 0) {
  return float(from * 10000 + to * 100 + i) + 0.25f * float(round);
}

// Out of place, uneven counts (rank a sends a + b + 1 floats to rank b), planned once and
// replayed `rounds` times without allocating; only what goes to other ranks counts as sent.
inline void check_all_to_all_uneven(Communicator& comm, Stream& stream, int rounds) {
  const int P = comm.size(), me = comm.rank();
  std::vector<size_t> send_counts, recv_counts;
  for (int b = 0; b < P; ++b) send_counts.push_back(size_t(me + b + 1) * sizeof(float));
  for (int a = 0; a < P; ++a) recv_counts.push_back(size_t(a + me + 1) * sizeof(float));
  const auto sd = Displacements::packed(send_counts), rd = Displacements::packed(recv_counts);
  const Tensor send({int64_t(sd.total() / sizeof(float))}), recv({int64_t(rd.total() / sizeof(float))});
  auto exchange = comm.all_to_all(send, sd, recv, rd);
  const double sent_before = comm.stats().bytes_sent;
  const uint64_t storages = Storage::created();
  for (int round = 0; round < rounds; ++round) {
    size_t k = 0;
    for (int b = 0; b < P; ++b)
      for (int i = 0; i < me + b + 1; ++i) send.f32()[k++] = tag(me, b, i, round);
    std::fill_n(recv.f32(), recv.numel(), -1.0f);
    exchange->start(stream);
    exchange->finish(stream);
    k = 0;
    for (int a = 0; a < P; ++a)
      for (int i = 0; i < a + me + 1; ++i) ASSERT_EQ(recv.f32()[k++], tag(a, me, i, round)) << "round " << round;
  }
  EXPECT_EQ(Storage::created(), storages) << "a replay allocated";
  EXPECT_EQ(comm.stats().bytes_sent - sent_before, double(rounds * (sd.total() - send_counts[size_t(me)])));
}

// Ring neighbours, driven by poll() until complete; an idle exchange counts as complete and
// finishing a completed one is harmless.
inline void check_ring_send_recv_polling(Communicator& comm, Stream& stream, int rounds) {
  const int P = comm.size(), me = comm.rank(), next = (me + 1) % P, prev = (me + P - 1) % P;
  const Tensor send({5 + me}), recv({5 + prev});
  auto exchange = comm.send_recv(send, next, recv, prev);
  EXPECT_TRUE(exchange->poll()) << "an idle exchange is complete";
  for (int round = 0; round < rounds; ++round) {
    for (int64_t i = 0; i < send.numel(); ++i) send.f32()[i] = tag(me, next, int(i), round);
    exchange->start(stream);
    while (!exchange->poll()) {
    }
    exchange->finish(stream);
    for (int64_t i = 0; i < recv.numel(); ++i) ASSERT_EQ(recv.f32()[i], tag(prev, me, int(i), round));
  }
}

// In place, uneven parts (rank a contributes 2a + 1 floats): every part reaches every rank.
inline void check_all_gather_in_place_uneven(Communicator& comm, Stream& stream, int rounds) {
  const int P = comm.size(), me = comm.rank();
  std::vector<size_t> counts;
  for (int a = 0; a < P; ++a) counts.push_back(size_t(2 * a + 1) * sizeof(float));
  const auto d = Displacements::packed(counts);
  const Tensor all({int64_t(d.total() / sizeof(float))});
  auto exchange = comm.all_gather_in_place(all, d);
  for (int round = 0; round < rounds; ++round) {
    std::fill_n(all.f32(), all.numel(), -1.0f);
    float* mine = all.f32() + d.offsets[size_t(me)] / sizeof(float);
    for (int i = 0; i < 2 * me + 1; ++i) mine[i] = tag(me, 0, i, round);
    exchange->start(stream);
    exchange->finish(stream);
    size_t k = 0;
    for (int a = 0; a < P; ++a)
      for (int i = 0; i < 2 * a + 1; ++i) ASSERT_EQ(all.f32()[k++], tag(a, 0, i, round)) << "round " << round;
  }
}

// An exchange destroyed while started completes first: its data has arrived afterwards.
inline void check_destroying_a_started_exchange_completes_it(Communicator& comm, Stream& stream) {
  const int P = comm.size(), me = comm.rank(), next = (me + 1) % P, prev = (me + P - 1) % P;
  const Tensor send({3}), recv = Tensor::zeros({3});
  for (int i = 0; i < 3; ++i) send.f32()[i] = tag(me, next, i);
  {
    auto exchange = comm.send_recv(send, next, recv, prev);
    exchange->start(stream);
  }  // destroyed while started
  for (int i = 0; i < 3; ++i) ASSERT_EQ(recv.f32()[i], tag(prev, me, i));
}

}  // namespace fresco::testing
