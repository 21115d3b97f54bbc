// The inter-node transports on 2 or 4 MPI ranks of one machine: the UCX one-sided communicator
// (run under UCX_TLS=sm,self and UCX_TLS=tcp,self by CTest) and the emulated slow link.
// Every exchange is checked against values each rank can predict.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "mpi/comm/emulated_link.hpp"
#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/plans/usp_attention.hpp"
#include "src/backend/backend.hpp"
#include "src/model/sequence_shard.hpp"
#include "tests/exchange_checks.hpp"
#if FRESCO_HAVE_UCX
#include "mpi/comm/ucx_communicator.hpp"
#endif

using namespace fresco;

namespace {

HostStream g_host_stream;
using Clock = std::chrono::steady_clock;

std::unique_ptr<MpiCommunicator> world_mpi() {
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  return std::make_unique<MpiCommunicator>(dup, "world");
}

using fresco::testing::tag;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

#if FRESCO_HAVE_UCX

std::unique_ptr<UcxCommunicator> world_ucx() { return std::make_unique<UcxCommunicator>(world_mpi()); }

TEST(Ucx, DescribesItselfAsAOneSidedHostTransport) {
  auto comm = world_ucx();
  EXPECT_EQ(comm->size(), world_mpi()->size());
  EXPECT_NE(comm->describe().find("(ucx one-sided)"), std::string::npos) << comm->describe();
  EXPECT_FALSE(comm->device_memory());
  EXPECT_FALSE(comm->capturable());
}

// Out of place, uneven counts (rank a sends a + b + 1 floats to rank b), replayed.
TEST(Ucx, AllToAllUnevenCountsReplayed) {
  auto comm = world_ucx();
  fresco::testing::check_all_to_all_uneven(*comm, g_host_stream, 5);
}

// An all-to-all whose receive layout is not packed (gaps, reversed order) and a peer that
// sends nothing to some ranks.
TEST(Ucx, AllToAllScatteredOffsetsAndEmptyParts) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  auto count = [](int a, int b) { return (a + b) % 2 == 1 ? 0 : 3 + a; };  // floats a -> b
  Displacements sd = Displacements::packed([&] {
    std::vector<size_t> c;
    for (int b = 0; b < P; ++b) c.push_back(size_t(count(me, b)) * sizeof(float));
    return c;
  }());
  Displacements rd;
  size_t end = 0;
  for (int a = P - 1; a >= 0; --a) end += 8 * sizeof(float);  // 8-float slots, reversed, gaps
  for (int a = 0; a < P; ++a) {
    rd.counts.push_back(size_t(count(a, me)) * sizeof(float));
    rd.offsets.push_back(size_t(P - 1 - a) * 8 * sizeof(float));
  }
  const Tensor send({std::max<int64_t>(1, int64_t(sd.total() / sizeof(float)))}), recv({int64_t(end / sizeof(float))});
  auto exchange = comm->all_to_all(send, sd, recv, rd);
  for (int round = 0; round < 3; ++round) {
    for (int b = 0; b < P; ++b)
      for (int i = 0; i < count(me, b); ++i) send.f32()[sd.offsets[size_t(b)] / sizeof(float) + size_t(i)] = tag(me, b, i, round);
    std::fill_n(recv.f32(), recv.numel(), -1.0f);
    exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
    for (int a = 0; a < P; ++a) {
      const float* slot = recv.f32() + rd.offsets[size_t(a)] / sizeof(float);
      for (int i = 0; i < 8; ++i)
        ASSERT_EQ(slot[i], i < count(a, me) ? tag(a, me, i, round) : -1.0f) << "from " << a << " round " << round;
    }
  }
}

TEST(Ucx, RingSendRecvReplayedWithPolling) {
  auto comm = world_ucx();
  fresco::testing::check_ring_send_recv_polling(*comm, g_host_stream, 4);
}

// In place, uneven parts: every rank's part reaches every rank.
TEST(Ucx, AllGatherInPlaceUnevenReplayed) {
  auto comm = world_ucx();
  fresco::testing::check_all_gather_in_place_uneven(*comm, g_host_stream, 3);
}

// The Torus pattern with large blocks (several MiB: UCX's zero-copy and fragmented paths):
// at step s every rank puts its own block to rank me+s and receives rank me-s's into buffer
// s % 2, two exchanges per buffer. A slow reader (rank 0 sleeps while it checks what arrived)
// must never see its buffer change before it opens it again: the ready handshake.
TEST(Ucx, TorusStepsNeverOverwriteABufferStillBeingRead) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  const int64_t n = (3 << 20) / int64_t(sizeof(float)) + 7;  // 3 MiB + 7 floats
  const Tensor own({n}), buffers[2] = {Tensor({n}), Tensor({n})};
  std::vector<std::unique_ptr<Exchange>> steps;
  for (int s = 1; s < P; ++s)
    steps.push_back(comm->send_recv(own, (me + s) % P, buffers[s % 2], (me - s + P) % P));
  for (int round = 0; round < 3; ++round) {
    for (int64_t i = 0; i < n; ++i) own.f32()[i] = float(me * 1000 + round) + float(i % 97) * 1e-3f;
    for (int s = 1; s < P; ++s) {
      Exchange& step = *steps[size_t(s - 1)];
      step.start(g_host_stream);
      step.finish(g_host_stream);
      const int from = (me - s + P) % P;
      const Tensor& got = buffers[s % 2];
      for (int64_t i = 0; i < n; i += 4099)
        ASSERT_EQ(got.f32()[i], float(from * 1000 + round) + float(i % 97) * 1e-3f) << "step " << s;
      if (me == 0) {  // a slow consumer: the next writer of this buffer must wait for it
        const float first = got.f32()[0], last = got.f32()[n - 1];
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        ASSERT_EQ(got.f32()[0], first);
        ASSERT_EQ(got.f32()[n - 1], last);
      }
    }
  }
}

// One direction only (rank 0 -> rank 1): without release() the sender's put waits for the
// receiver's next start(); after release() it happens at the sender's start(), so the sender
// completes while the receiver has not started yet.
TEST(Ucx, ReleaseLetsTheSenderPutBeforeTheReceiverStarts) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  std::vector<size_t> send_counts(size_t(P), 0), recv_counts(size_t(P), 0);
  if (me == 0) send_counts[1] = 16 * sizeof(float);
  if (me == 1) recv_counts[0] = 16 * sizeof(float);
  const Tensor send({16}), recv = Tensor::zeros({16});
  auto exchange = comm->all_to_all(send, Displacements::packed(send_counts), recv, Displacements::packed(recv_counts));
  auto completes_alone = [&](double seconds) {  // rank 0 alone, rank 1 not started
    const auto t0 = Clock::now();
    while (seconds_since(t0) < seconds)
      if (exchange->poll()) return true;
    return false;
  };
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const bool released = epoch == 3;  // epoch 3's buffer was released after epoch 2
    for (int i = 0; i < 16; ++i) send.f32()[i] = tag(0, 1, i, epoch);
    comm->barrier();  // rank 1 has finished (and released) the previous epoch
    if (me == 0) {
      exchange->start(g_host_stream);
      EXPECT_EQ(completes_alone(released ? 5.0 : 0.2), released) << "epoch " << epoch;
    }
    comm->barrier();  // rank 1 starts only now
    if (me != 0) exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
    if (me == 1)
      for (int i = 0; i < 16; ++i) ASSERT_EQ(recv.f32()[i], tag(0, 1, i, epoch)) << "epoch " << epoch;
    if (epoch == 2) exchange->release(g_host_stream);
  }
}

// A receiver's release() may reach a sender that has already destroyed its exchange (the last
// layer of a plan): the signal must land in memory that is still the transport's, not in freed
// heap (which once corrupted malloc's lists at the end of a run).
TEST(Ucx, ReleaseAfterThePeerDestroyedItsExchangeIsHarmless) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank(), next = (me + 1) % P, prev = (me + P - 1) % P;
  for (int round = 0; round < 3; ++round) {
    const Tensor send({4096}), recv({4096});
    auto exchange = comm->send_recv(send, next, recv, prev);
    exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
    if (me % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the peers destroy first
    exchange->release(g_host_stream);
    exchange.reset();
    std::vector<std::unique_ptr<char[]>> churn;  // reuses freed heap blocks
    for (int i = 0; i < 64; ++i) churn.emplace_back(new char[size_t(128 + 64 * i)]());
    comm->barrier();
  }
}

TEST(Ucx, DestroyingAStartedExchangeCompletesIt) {
  auto comm = world_ucx();
  fresco::testing::check_destroying_a_started_exchange_completes_it(*comm, g_host_stream);
}

TEST(Ucx, MismatchedPartnersAreRefusedAtSetUp) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  // Every rank sends 4 floats to its next rank but expects 5 from its previous one.
  const Tensor send({4}), recv({5});
  EXPECT_THROW(comm->send_recv(send, (me + 1) % P, recv, (me + P - 1) % P), Error);
  comm->barrier();
}

// A peer that never starts: finish() throws CommTimeout naming it; once the peer starts, the
// same exchange completes.
TEST(Ucx, DeadlineEndsTheWaitForAHungPeer) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  comm->set_deadline(1.0);
  const Tensor send({4}), recv = Tensor::zeros({4});
  for (int i = 0; i < 4; ++i) send.f32()[i] = tag(me, 1 - me, i);
  std::unique_ptr<Exchange> exchange;
  if (me < 2) exchange = comm->send_recv(send, 1 - me, recv, 1 - me);
  else exchange = comm->send_recv(send, me, recv, me);
  constexpr int kGoTag = 78;
  if (me == 0) {
    exchange->start(g_host_stream);
    const auto t0 = Clock::now();
    std::string message;
    try {
      exchange->finish(g_host_stream);
    } catch (const CommTimeout& e) {
      message = e.what();
    }
    const double waited = seconds_since(t0);
    ASSERT_FALSE(message.empty()) << "no CommTimeout although the peer never started";
    EXPECT_GE(waited, 0.95);
    EXPECT_LT(waited, 5.0);
    EXPECT_NE(message.find("rank 0 (world 0) waited"), std::string::npos) << message;
    EXPECT_NE(message.find("(ucx one-sided)"), std::string::npos) << message;
    EXPECT_NE(message.find("data from rank 1 (world 1)"), std::string::npos) << message;
    EXPECT_NE(message.find("put to rank 1 (world 1) (its buffer was never opened)"), std::string::npos) << message;
    int go = 1;
    MPI_Send(&go, 1, MPI_INT, 1, kGoTag, MPI_COMM_WORLD);
    exchange->finish(g_host_stream);
  } else if (me == 1) {
    int go = 0;
    MPI_Recv(&go, 1, MPI_INT, 0, kGoTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
  }
  if (me < 2)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(recv.f32()[i], tag(1 - me, me, i));
  comm->set_deadline(30);
  comm->barrier();
}

TEST(Ucx, CollectivesGoThroughTheBootstrapCommunicator) {
  auto comm = world_ucx();
  const int P = comm->size(), me = comm->rank();
  const Tensor f = Tensor::from_floats({2}, std::vector<float>{1.5f, float(me)});
  comm->all_reduce_sum(f, g_host_stream);
  EXPECT_EQ(f.f32()[0], 1.5f * float(P));
  EXPECT_EQ(f.f32()[1], float(P * (P - 1) / 2));
  std::vector<int> all(size_t(P), -1);
  comm->host_all_gather(&me, all.data(), Displacements::packed(std::vector<size_t>(size_t(P), sizeof(int))));
  for (int a = 0; a < P; ++a) EXPECT_EQ(all[size_t(a)], a);
  comm->barrier();
}

#endif  // FRESCO_HAVE_UCX

// ---- Torus attention ----------------------------------------------------------------------

namespace {

// Torus attention over `ring` (U = 1: every rank is a "node"), 11 tokens in uneven shards,
// against LocalAttention over the whole sequence: the relative L2 error of this rank's rows.
double torus_error(Communicator& ring) {
  auto cpu = make_cpu_backend();
  auto self = MpiCommunicator::self("ulysses");
  constexpr int64_t H = 3, D = 4, L = 11;
  const auto shards = partition_sequence(3, L - 3, ring.size());
  const int pos = ring.rank();
  const int64_t n = shards[size_t(pos)].count();
  int64_t first = 0;
  for (int p = 0; p < pos; ++p) first += shards[size_t(p)].count();
  Tensor full[3];  // [L, H, D] q, k, v of the whole sequence, the same on every rank
  for (int part = 0; part < 3; ++part) {
    full[part] = Tensor({L, H, D});
    for (int64_t i = 0; i < full[part].numel(); ++i) full[part].f32()[i] = float(std::sin(0.37 * double(i) + 1.3 * part));
  }
  UspAttention torus(*self, ring, int(H), int(D), DType::f32, InterNodeSchedule::torus);
  torus.prepare(*cpu, shards, pos);
  const Tensor o({n, H, D});  // [n, H, D] this rank's rows
  for (int round = 0; round < 2; ++round)  // replayed
    torus.attend(*cpu, full[0].rows(first, n), full[1].rows(first, n), full[2].rows(first, n), o);
  Tensor ref({L, H, D});
  LocalAttention().attend(*cpu, full[0], full[1], full[2], ref);
  const std::vector<float> x = o.to_vector(), y = ref.rows(first, n).clone().to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - double(y[i])) * (double(x[i]) - double(y[i]));
    den += double(y[i]) * double(y[i]);
  }
  return std::sqrt(num / den);
}

}  // namespace

TEST(TorusAttention, MatchesLocalAttentionOverMpi) {
  auto ring = world_mpi();
  EXPECT_LT(torus_error(*ring), 1e-6);
}

#if FRESCO_HAVE_UCX
TEST(TorusAttention, MatchesLocalAttentionOverUcx) {
  auto ring = world_ucx();
  EXPECT_LT(torus_error(*ring), 1e-6);
}
#endif

// ---- the emulated link ------------------------------------------------------------------

TEST(EmulatedLink, ParsesBandwidthAndLatency) {
  const LinkEmulation link = LinkEmulation::parse("2.5,40");
  EXPECT_TRUE(link.enabled());
  EXPECT_EQ(link.bandwidth_gb_per_s, 2.5);
  EXPECT_EQ(link.latency_us, 40);
  EXPECT_FALSE(LinkEmulation::parse("").enabled());
  EXPECT_FALSE(LinkEmulation::parse("off").enabled());
  for (const char* bad : {"2", "0,10", "-1,10", "2,-1", "x,1", "2,1us", "nan,1", "inf,1"})
    EXPECT_THROW(LinkEmulation::parse(bad), InputError) << bad;
}

// Queueing on one interface: two transfers of B bytes started together end after 2B/bw + L.
TEST(EmulatedLink, TransfersShareTheInterface) {
  EmulatedNic nic(LinkEmulation::parse("1,100"));  // 1 GB/s, 100 us
  const auto t0 = EmulatedNic::Clock::now();
  const auto first = nic.schedule(t0, 1e6, 0);   // 1 ms of sending
  const auto second = nic.schedule(t0, 1e6, 1e6);
  EXPECT_NEAR(std::chrono::duration<double>(first - t0).count(), 1.1e-3, 1e-6);
  EXPECT_NEAR(std::chrono::duration<double>(second - t0).count(), 2.1e-3, 1e-6);  // queued behind the first
}

// Across emulated nodes an exchange takes at least bytes / bandwidth + latency and the excess
// is counted as waiting; within a node it is not delayed.
TEST(EmulatedLink, DelaysOnlyExchangesAcrossNodes) {
  const int P = world_mpi()->size(), me = world_mpi()->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  const int next = (me + 1) % P, prev = (me + P - 1) % P;
  const Tensor send({250000}), recv({250000});  // 1 MB
  for (const bool across : {true, false}) {
    std::vector<int> node_of(static_cast<size_t>(P), 0);
    for (int r = 0; r < P; ++r) node_of[size_t(r)] = across ? r : 0;  // one rank per node, or one node
    auto nic = std::make_shared<EmulatedNic>(LinkEmulation::parse("0.5,300000"));  // 2 ms + 300 ms
    EmulatedLinkCommunicator comm(world_mpi(), node_of, nic);
    EXPECT_NE(comm.describe().find("0.5 GB/s, 300000 us per exchange (emulated)"), std::string::npos);
    auto exchange = comm.send_recv(send, next, recv, prev);
    for (int64_t i = 0; i < send.numel(); i += 1000) send.f32()[i] = tag(me, next, int(i % 100));
    comm.barrier();
    const auto t0 = Clock::now();
    exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
    const double took = seconds_since(t0);
    for (int64_t i = 0; i < send.numel(); i += 1000) ASSERT_EQ(recv.f32()[i], tag(prev, me, int(i % 100)));
    if (across) {
      EXPECT_GE(took, 0.302);
      EXPECT_GE(comm.stats().wait_seconds, 0.29);
    } else {
      EXPECT_LT(took, 0.3) << "an exchange within a node was delayed";
    }
  }
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  MpiSession mpi(&argc, &argv);
  if (mpi.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (local && mpi.rank() != 0) std::fprintf(stderr, "rank %d: test failures\n", mpi.rank());
  return any;
}
