// The communicator, the parallel layout and the sequence partition, on 1, 2 or 4 MPI ranks
// (registered at each). Every operation is checked against values each rank can predict.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <numeric>

#include <chrono>
#include <thread>

#include "mpi/plans/displaced_attention.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/model/sequence_shard.hpp"

using namespace fresco;

namespace {

MpiSession* g_mpi = nullptr;

std::unique_ptr<MpiCommunicator> world_comm() {
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  return std::make_unique<MpiCommunicator>(dup, "world");
}

// A value that encodes (sender, receiver, index), so misplaced data is detected.
float tag(int from, int to, int i) { return float(from * 10000 + to * 100 + i); }

}  // namespace

TEST(Communicator, AllToAllUnevenCounts) {
  auto comm = world_comm();
  const int P = comm->size(), me = comm->rank();
  // Rank a sends (a + b + 1) floats to rank b.
  std::vector<size_t> send_counts, recv_counts;
  std::vector<float> send;
  for (int b = 0; b < P; ++b) {
    send_counts.push_back(size_t(me + b + 1) * sizeof(float));
    for (int i = 0; i < me + b + 1; ++i) send.push_back(tag(me, b, i));
  }
  for (int a = 0; a < P; ++a) recv_counts.push_back(size_t(a + me + 1) * sizeof(float));
  const auto sd = Displacements::packed(send_counts), rd = Displacements::packed(recv_counts);
  std::vector<float> recv(rd.total() / sizeof(float), -1.0f);
  comm->all_to_all(send.data(), sd, recv.data(), rd);
  size_t k = 0;
  for (int a = 0; a < P; ++a)
    for (int i = 0; i < a + me + 1; ++i) ASSERT_EQ(recv[k++], tag(a, me, i));
  // Only what went to other ranks counts as sent.
  EXPECT_EQ(comm->stats().bytes_sent, double(sd.total() - send_counts[size_t(me)]));
}

TEST(Communicator, RingSendRecvNonBlocking) {
  auto comm = world_comm();
  const int P = comm->size(), me = comm->rank(), next = (me + 1) % P, prev = (me + P - 1) % P;
  std::vector<float> send(5 + me), recv(5 + prev, -1.0f);
  for (size_t i = 0; i < send.size(); ++i) send[i] = tag(me, next, int(i));
  auto req = comm->send_recv_start(send.data(), send.size() * sizeof(float), next, recv.data(),
                                   recv.size() * sizeof(float), prev);
  while (!req->test()) {
  }
  req->wait();  // waiting on a completed request is harmless
  for (size_t i = 0; i < recv.size(); ++i) ASSERT_EQ(recv[i], tag(prev, me, int(i)));
}

TEST(Communicator, AllGatherUnevenAndAllReduce) {
  auto comm = world_comm();
  const int P = comm->size(), me = comm->rank();
  std::vector<size_t> counts;
  for (int a = 0; a < P; ++a) counts.push_back(size_t(2 * a + 1) * sizeof(float));
  std::vector<float> mine(size_t(2 * me + 1));
  for (int i = 0; i < 2 * me + 1; ++i) mine[size_t(i)] = tag(me, 0, i);
  const auto d = Displacements::packed(counts);
  std::vector<float> all(d.total() / sizeof(float));
  comm->all_gather(mine.data(), all.data(), d);
  size_t k = 0;
  for (int a = 0; a < P; ++a)
    for (int i = 0; i < 2 * a + 1; ++i) ASSERT_EQ(all[k++], tag(a, 0, i));

  std::vector<double> sum = {double(me), 1.0};
  comm->all_reduce_sum(sum.data(), sum.size());
  EXPECT_EQ(sum[0], double(P * (P - 1) / 2));
  EXPECT_EQ(sum[1], double(P));
  std::vector<float> fsum = {1.5f};
  comm->all_reduce_sum(fsum.data(), 1);
  EXPECT_EQ(fsum[0], 1.5f * float(P));
  comm->barrier();
}

TEST(SequencePartition, EvenAndUnevenShards) {
  const auto s = partition_sequence(7, 24, 4);  // 31 rows: 8, 8, 8, 7
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].count(), 8);
  EXPECT_EQ(s[3].count(), 7);
  EXPECT_EQ(s[0].txt_rows(), 7);
  EXPECT_EQ(s[0].img_rows(), 1);
  EXPECT_EQ(s[1].txt_rows(), 0);
  EXPECT_EQ(s[1].img_begin(), 1);
  EXPECT_EQ(s[3].img_begin() + s[3].img_rows(), 24);
  EXPECT_THROW(partition_sequence(1, 2, 4), InputError);
}

TEST(SequencePartition, PatchesAreBandsOfRows) {
  const auto s = partition_patches(7, 5, 6, 2);  // rows 3 + 2, text 4 + 3
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].img_rows(), 18);
  EXPECT_EQ(s[1].img_begin(), 18);
  EXPECT_EQ(s[1].img_rows(), 12);
  EXPECT_EQ(s[0].txt_rows(), 4);
  EXPECT_EQ(s[1].txt_begin, 4);
  EXPECT_EQ(s[1].txt_rows(), 3);
  EXPECT_THROW(partition_patches(7, 3, 6, 4), InputError);
}

TEST(Layout, AutomaticDegrees) {
  // 8 ranks, 4 per node: one image -> Ulysses 4 x Ring 2; 2 images -> groups of 4; many -> 1.
  auto d = resolve_degrees(8, 4, {}, 1);
  EXPECT_EQ(d.ulysses, 4);
  EXPECT_EQ(d.ring, 2);
  EXPECT_EQ(resolve_degrees(8, 4, {}, 2).group_size(), 4);
  EXPECT_EQ(resolve_degrees(8, 4, {}, 100).group_size(), 1);
  d = resolve_degrees(8, 4, {0, 2, 0}, 1);  // only --ring given
  EXPECT_EQ(d.ulysses, 1);
  EXPECT_EQ(d.ring, 2);
  EXPECT_THROW(resolve_degrees(4, 4, {3, 1, 0}, 1), InputError);
}

TEST(Layout, UlyssesInsideEmulatedNodes) {
  const int P = g_mpi->size();
  if (P < 4) GTEST_SKIP() << "needs 4 ranks";
  // 2 ranks per emulated node, U = 2, R = 2: Ulysses pairs are node mates, Ring crosses nodes.
  const ParallelLayout layout(*g_mpi, {2, 2, 2}, 1);
  EXPECT_TRUE(layout.ulysses_within_nodes());
  EXPECT_EQ(layout.nodes(), P / 2);
  EXPECT_EQ(layout.ulysses_comm().size(), 2);
  EXPECT_EQ(layout.ring_comm().size(), 2);
  // The world ranks of my Ulysses group share a node (rank / 2); those of my Ring group do not.
  const int me = g_mpi->rank();
  const auto two_ints = Displacements::packed({sizeof(int), sizeof(int)});
  int ulysses_members[2], ring_members[2];
  layout.ulysses_comm().all_gather(&me, ulysses_members, two_ints);
  layout.ring_comm().all_gather(&me, ring_members, two_ints);
  EXPECT_EQ(ulysses_members[0] / 2, ulysses_members[1] / 2);
  EXPECT_NE(ring_members[0] / 2, ring_members[1] / 2);
}

// The displaced gather must stay outstanding while the rank computes: rank 1 posts its part
// of layer 0's gather 400 ms late, so rank 0's gather cannot complete before that; rank 0 must
// still get through the whole displaced step quickly and see the gather in flight.
TEST(DisplacedAttention, GatherStaysOutstandingWhileComputing) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  auto comm = world_comm();
  auto cpu = make_cpu_backend();
  constexpr int kLayers = 3, kHeads = 2, kDim = 4;
  DisplacedPatchAttention attention(*comm, kLayers, kHeads, kDim, {/*warmup_steps=*/1, false, DType::f32});
  const auto shards = partition_patches(3, 2 * P, 2, P);
  attention.prepare(*cpu, shards, me);
  const int64_t n = shards[size_t(me)].count();
  Tensor q = Tensor::zeros({n, kHeads, kDim}), k = q.clone(), v = q.clone(), o = q.clone();
  for (int64_t i = 0; i < q.numel(); ++i) q.f32()[i] = k.f32()[i] = v.f32()[i] = float(i % 7) * 0.1f;

  attention.begin_forward();  // step 0: warm-up, synchronous
  for (int l = 0; l < kLayers; ++l) attention.attend(*cpu, q, k, v, o);
  comm->barrier();

  attention.begin_forward();  // step 1: displaced
  if (me == 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto start = std::chrono::steady_clock::now();
  for (int l = 0; l < kLayers; ++l) attention.attend(*cpu, q, k, v, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (me == 0) {
    EXPECT_LT(seconds, 0.2) << "rank 0 waited for the displaced gather inside the step";
    EXPECT_EQ(attention.stats().posted, kLayers);
    EXPECT_GE(attention.stats().outstanding, 1) << "no gather was in flight during compute";
  }
  attention.begin_forward();  // step 2 completes the gathers it reads
  for (int l = 0; l < kLayers; ++l) attention.attend(*cpu, q, k, v, o);
  for (int64_t i = 0; i < o.numel(); ++i) ASSERT_TRUE(std::isfinite(o.f32()[i]));
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  MpiSession mpi(&argc, &argv);
  g_mpi = &mpi;
  if (mpi.rank() != 0) {  // one report for the job; failures still change every rank's status
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (local && mpi.rank() != 0) std::fprintf(stderr, "rank %d: test failures\n", mpi.rank());
  return any;
}
