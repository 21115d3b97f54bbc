// The communicator, the parallel layout, the sequence partition and the parallel plans, on 1, 2
// or 4 MPI ranks (registered at each). Every operation is checked against values each rank can
// predict; the attention plans against the whole-sequence attention of the CPU backend.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <thread>

#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/plans/displaced_attention.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "mpi/plans/row_partition.hpp"
#include "mpi/plans/usp_attention.hpp"
#include "src/model/sequence_shard.hpp"
#include "tests/exchange_checks.hpp"

using namespace fresco;
using fresco::testing::tag;

namespace {

MpiSession* g_mpi = nullptr;

std::unique_ptr<MpiCommunicator> world_comm() {
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  return std::make_unique<MpiCommunicator>(dup, "world");
}


// A smooth value, the same on every rank, that bf16 does not represent exactly.
float wave(double x) { return float(std::sin(x) * 0.9 + 0.05 * std::cos(7.1 * x)); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(double(x[i]) - double(y[i])));
  return m;
}

double relative_l2(const Tensor& test, const Tensor& ref) {
  const std::vector<float> x = test.to_vector(), y = ref.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - double(y[i])) * (double(x[i]) - double(y[i]));
    den += double(y[i]) * double(y[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Rounded to `dtype` and back (identity for f32).
Tensor rounded(const Tensor& f32, DType dtype) {
  return dtype == DType::f32 ? f32.clone() : f32.to_dtype(dtype).to_f32();
}

bool cpu_runs(Backend& backend, Op op, DType dtype) {
  OpDesc d;
  d.op = op;
  d.in = d.weight = d.out = dtype;
  d.strided = true;
  return backend.supports(d);
}

HostStream g_host_stream;

}  // namespace

// ---- exchanges ------------------------------------------------------------------------------

TEST(Communicator, DescribesItsMembersAndIsAHostTransport) {
  auto comm = world_comm();
  std::string expected = "world: mpi ranks {";
  for (int r = 0; r < comm->size(); ++r) expected += (r ? "," : "") + std::to_string(r);
  EXPECT_EQ(comm->describe(), expected + "} of world");
  EXPECT_FALSE(comm->device_memory());
  EXPECT_FALSE(comm->capturable());
  EXPECT_EQ(comm->deadline(), Communicator::kDefaultDeadlineSeconds);
}

TEST(Communicator, AllToAllUnevenCountsReplayed) {
  auto comm = world_comm();
  fresco::testing::check_all_to_all_uneven(*comm, g_host_stream, 3);
}

TEST(Communicator, RingSendRecvReplayedWithPolling) {
  auto comm = world_comm();
  fresco::testing::check_ring_send_recv_polling(*comm, g_host_stream, 3);
}

TEST(Communicator, DestroyingAStartedExchangeCompletesIt) {
  auto comm = world_comm();
  fresco::testing::check_destroying_a_started_exchange_completes_it(*comm, g_host_stream);
}

TEST(Communicator, AllGatherInPlaceUnevenReplayed) {
  auto comm = world_comm();
  fresco::testing::check_all_gather_in_place_uneven(*comm, g_host_stream, 3);
}

TEST(Communicator, AllReduceF32AndF64Tensors) {
  auto comm = world_comm();
  const int P = comm->size(), me = comm->rank();
  const Tensor d({2, 2}, DType::f64);
  double* dv = d.data<double>();
  dv[0] = me;
  dv[1] = 1.0;
  dv[2] = 0.1 * me;
  dv[3] = -2.5;
  comm->all_reduce_sum(d, g_host_stream);
  EXPECT_EQ(dv[0], double(P * (P - 1) / 2));
  EXPECT_EQ(dv[1], double(P));
  EXPECT_NEAR(dv[2], 0.1 * P * (P - 1) / 2, 1e-12);
  EXPECT_EQ(dv[3], -2.5 * P);
  const Tensor f = Tensor::from_floats({3}, std::vector<float>{1.5f, float(me), -1.0f});
  comm->all_reduce_sum(f, g_host_stream);
  EXPECT_EQ(f.f32()[0], 1.5f * float(P));
  EXPECT_EQ(f.f32()[1], float(P * (P - 1) / 2));
  EXPECT_EQ(f.f32()[2], -float(P));
  EXPECT_THROW(comm->all_reduce_sum(Tensor({2}, DType::bf16), g_host_stream), Error);
  comm->barrier();
}

TEST(Communicator, HostAllGatherUneven) {
  auto comm = world_comm();
  const int P = comm->size(), me = comm->rank();
  std::vector<size_t> counts;
  for (int a = 0; a < P; ++a) counts.push_back(size_t(a + 2) * sizeof(float));
  std::vector<float> mine(size_t(me + 2));
  for (int i = 0; i < me + 2; ++i) mine[size_t(i)] = tag(me, 1, i);
  const auto d = Displacements::packed(counts);
  std::vector<float> all(d.total() / sizeof(float), -1.0f);
  comm->host_all_gather(mine.data(), all.data(), d);
  size_t k = 0;
  for (int a = 0; a < P; ++a)
    for (int i = 0; i < a + 2; ++i) ASSERT_EQ(all[k++], tag(a, 1, i));
}

TEST(Communicator, BuffersAreChecked) {
  auto comm = world_comm();
  const Tensor wide({4, 6});
  const Tensor strided = wide.cols(1, 3);  // not contiguous
  EXPECT_THROW(comm->send_recv(strided, comm->rank(), Tensor({4, 3}), comm->rank()), Error);
  // A displacement beyond the buffer.
  EXPECT_THROW(comm->all_gather_in_place(Tensor({2}), Displacements::packed(std::vector<size_t>(size_t(comm->size()), 64))),
               Error);
}

// A peer that never posts its side: the waiting rank's finish() throws CommTimeout after the
// deadline, naming the operation, the communicator, itself and the peer. The peer then posts
// (told by a plain MPI message) and both sides complete, so the program ends normally.
TEST(Communicator, DeadlineEndsTheWaitForAHungPeer) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  if (P < 2) GTEST_SKIP() << "needs 2 ranks";
  auto comm = world_comm();
  comm->set_deadline(1.0);
  EXPECT_EQ(comm->deadline(), 1.0);
  const Tensor send({4}), recv = Tensor::zeros({4});
  for (int i = 0; i < 4; ++i) send.f32()[i] = tag(me, 1 - me, i);
  constexpr int kGoTag = 77;
  if (me == 0) {
    auto exchange = comm->send_recv(send, 1, recv, 1);
    exchange->start(g_host_stream);
    const auto t0 = std::chrono::steady_clock::now();
    std::string message;
    try {
      exchange->finish(g_host_stream);
    } catch (const CommTimeout& e) {
      message = e.what();
      EXPECT_EQ(e.exit_code(), 6);
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(message.empty()) << "no CommTimeout although the peer never posted";
    EXPECT_GE(waited, 0.95);
    EXPECT_LT(waited, 5.0) << "the deadline of 1 s was not kept";
    EXPECT_NE(message.find("rank 0 (world 0) waited"), std::string::npos) << message;
    EXPECT_NE(message.find("send/recv of world: mpi ranks {"), std::string::npos) << message;
    EXPECT_NE(message.find("receive from rank 1 (world 1)"), std::string::npos) << message;
    EXPECT_NE(message.find("hung or dead (deadline 1.0 s"), std::string::npos) << message;
    EXPECT_TRUE(comm->failed());
    EXPECT_GE(comm->stats().wait_seconds, 0.95);
    int go = 1;
    MPI_Send(&go, 1, MPI_INT, 1, kGoTag, MPI_COMM_WORLD);
    exchange->finish(g_host_stream);  // the peer is back: the same exchange completes
  } else if (me == 1) {
    int go = 0;
    MPI_Recv(&go, 1, MPI_INT, 0, kGoTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    auto exchange = comm->send_recv(send, 0, recv, 0);
    exchange->start(g_host_stream);
    exchange->finish(g_host_stream);
  }
  if (me < 2) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(recv.f32()[i], tag(1 - me, me, i));
  }
  comm->set_deadline(30);
  comm->barrier();
}

// ---- partitions and layout ------------------------------------------------------------------

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
  layout.ulysses_comm().host_all_gather(&me, ulysses_members, two_ints);
  layout.ring_comm().host_all_gather(&me, ring_members, two_ints);
  EXPECT_EQ(ulysses_members[0] / 2, ulysses_members[1] / 2);
  EXPECT_NE(ring_members[0] / 2, ring_members[1] / 2);
}

TEST(Layout, DeadlineReachesEveryCommunicator) {
  const ParallelLayout layout(*g_mpi, {}, 1);
  layout.set_deadline(12.5);
  EXPECT_EQ(layout.group().deadline(), 12.5);
  EXPECT_EQ(layout.ulysses_comm().deadline(), 12.5);
  EXPECT_EQ(layout.ring_comm().deadline(), 12.5);
}

TEST(ParallelPlan, GatherImageRowsKeepsTheDtype) {
  const ParallelLayout layout(*g_mpi, {}, 1);
  const int G = layout.group_size(), pos = layout.position();
  const auto shards = partition_sequence(2, 3 * G + 1, G);
  const int64_t C = 3, mine = shards[size_t(pos)].img_rows();
  const Tensor local({mine, C}, DType::f64);
  for (int64_t i = 0; i < mine * C; ++i) local.data<double>()[i] = double((shards[size_t(pos)].img_begin() * C) + i) + 0.5;
  const Tensor all = gather_image_rows(layout, shards, local);
  ASSERT_EQ(all.dtype(), DType::f64);
  ASSERT_EQ(all.shape(), (Shape{3 * G + 1, C}));
  for (int64_t i = 0; i < all.numel(); ++i) ASSERT_EQ(all.data<double>()[i], double(i) + 0.5);
}

// ---- USP (Ulysses x Ring) against the whole-sequence attention --------------------------------

namespace {

// USP on a U x R layout of the world with q/k/v read in place from strided qkv rows and o
// written into a wider buffer, against LocalAttention in f32 over the whole sequence.
// Returns the relative L2 error of this rank's rows (bf16: inputs and output in bf16, the
// reference in f32 on the same bf16-rounded inputs). `heads`: 3 (H % U != 0 for U = 2, 4) or
// more; `head_groups`: UspAttention's G requested (0: automatic), `groups_used` what it took.
double usp_error(int U, int R, DType dtype, int rounds = 2, int64_t heads = 3, int head_groups = 0,
                 int* groups_used = nullptr) {
  auto cpu = make_cpu_backend();
  const ParallelLayout layout(*g_mpi, {U, R, 0}, 1);
  layout.set_deadline(60);
  const int64_t H = heads, D = 4, HD = H * D, kTxt = 3, kImg = 8, L = kTxt + kImg;
  const auto shards = partition_sequence(kTxt, kImg, layout.group_size());
  const int pos = layout.position();
  const int64_t n = shards[size_t(pos)].count();
  int64_t first = 0;
  for (int p = 0; p < pos; ++p) first += shards[size_t(p)].count();

  // The whole sequence's q, k, v (the same on every rank), f32 rounded to the dtype.
  Tensor full[3];
  for (int part = 0; part < 3; ++part) {
    Tensor t({L, H, D});
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = wave(0.37 * double(i) + 1.3 * part);
    full[part] = rounded(t, dtype);
  }
  // This rank's rows as column views of fused qkv rows [n, 3 HD + 2] (row stride 3 HD + 2).
  Tensor qkv_f32 = Tensor::zeros({n, 3 * HD + 2});
  for (int part = 0; part < 3; ++part)
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(full[part].f32() + (first + r) * HD, HD, qkv_f32.f32() + r * (3 * HD + 2) + part * HD);
  const Tensor qkv = qkv_f32.to_dtype(dtype);
  auto part = [&](int p) { return qkv.cols(p * HD, HD).reshape({n, H, D}); };
  // o: columns [1, 1 + HD) of [n, HD + 3], the rest sentinels that must survive.
  Tensor out_f32({n, HD + 3});
  std::fill_n(out_f32.f32(), out_f32.numel(), 7.0f);
  const Tensor out = out_f32.to_dtype(dtype);
  const Tensor o = out.cols(1, HD).reshape({n, H, D});

  UspAttention usp(layout.ulysses_comm(), layout.ring_comm(), int(H), int(D), dtype, InterNodeSchedule::ring,
                   false, head_groups);
  usp.prepare(*cpu, shards, pos);
  if (groups_used) *groups_used = usp.head_groups();
  Tensor first_result;
  for (int round = 0; round < rounds; ++round) {  // replayed exchanges give the same result
    usp.attend(*cpu, part(0), part(1), part(2), o);
    const Tensor result = o.to_f32();
    if (round == 0) first_result = result;
    EXPECT_EQ(max_abs_diff(result, first_result), 0.0) << "round " << round << " differs from round 0";
  }
  const Tensor out_back = out.to_f32();
  for (int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(out_back.f32()[r * (HD + 3)], 7.0f) << "USP wrote left of o";
    for (int64_t c = HD + 1; c < HD + 3; ++c) EXPECT_EQ(out_back.f32()[r * (HD + 3) + c], 7.0f) << "USP wrote right of o";
  }

  Tensor ref({L, H, D});
  LocalAttention local;
  local.attend(*cpu, full[0], full[1], full[2], ref);
  return relative_l2(first_result, ref.rows(first, n).clone());
}

std::vector<std::pair<int, int>> layouts_of(int P) {
  std::vector<std::pair<int, int>> out;
  for (int U = 1; U <= P; ++U)
    if (P % U == 0) out.push_back({U, P / U});
  return out;
}

}  // namespace

TEST(UspAttention, MatchesLocalAttentionWithStridedOperands) {
  auto cpu = make_cpu_backend();
  for (auto [U, R] : layouts_of(g_mpi->size())) {
    SCOPED_TRACE("Ulysses " + std::to_string(U) + " x Ring " + std::to_string(R));
    // f32: the same math up to the order of the log-sum-exp merges.
    EXPECT_LT(usp_error(U, R, DType::f32), 1e-6);
  }
}

// bf16: q/k/v are the same bf16 values in both runs (the reference reads them widened to f32),
// so the error is USP's own rounding: every store rounds to bf16 (relative error up to
// 2^-9 = 2e-3 per store), and the Ring's partial outputs and each merge are stores, so R
// blocks give up to 2R - 1 roundings of the output against none in the f32 reference.
// Measured 1.2e-3 .. 3.3e-3 (np 1, 2, 4); 1e-2 leaves margin for the rounding, while a wrong
// block, row or head gives errors of order 1.
TEST(UspAttention, MatchesF32InBf16) {
  auto cpu = make_cpu_backend();
  for (Op op : {Op::attention, Op::attention_merge, Op::copy})
    if (!cpu_runs(*cpu, op, DType::bf16)) GTEST_SKIP() << "the CPU backend does not run " << op_name(op) << " in bf16";
  for (auto [U, R] : layouts_of(g_mpi->size())) {
    SCOPED_TRACE("Ulysses " + std::to_string(U) + " x Ring " + std::to_string(R));
    const double err = usp_error(U, R, DType::bf16);
    EXPECT_LT(err, 1e-2);
    EXPECT_GT(err, 0.0) << "bf16 run identical to f32: not running in bf16?";
  }
}

// Head groups (Ulysses alone): each group of a rank's heads is exchanged and attended on its
// own; the result is the same attention. 6 heads: Hu = 6, 3, 2 (U = 1, 2, 4 after padding
// 6 -> 8 at U = 4); 7 heads pad at U = 2 and 4, so a group may hold padding columns only.
TEST(UspAttention, HeadGroupsMatchLocalAttention) {
  for (auto [U, R] : layouts_of(g_mpi->size()))
    for (int64_t heads : {6, 7})
      for (int want : {1, 2, 3}) {
        SCOPED_TRACE("Ulysses " + std::to_string(U) + " x Ring " + std::to_string(R) + ", " + std::to_string(heads) +
                     " heads, " + std::to_string(want) + " groups requested");
        int used = 0;
        EXPECT_LT(usp_error(U, R, DType::f32, 2, heads, want, &used), 1e-6);
        const int Hu = int((heads + U - 1) / U);
        int expected = (U > 1 && R == 1) ? std::min(want, Hu) : 1;
        while (Hu % expected != 0) --expected;
        EXPECT_EQ(used, expected);
      }
  // Automatic: one group (the measured best).
  int used = 0;
  usp_error(g_mpi->size(), 1, DType::f32, 1, 6, 0, &used);
  EXPECT_EQ(used, 1);
}

TEST(UspAttention, PrepareWithTheSameShardsAllocatesNothing) {
  auto cpu = make_cpu_backend();
  const int P = g_mpi->size();
  const auto [U, R] = layouts_of(P)[layouts_of(P).size() / 2];  // a mixed layout where there is one
  const ParallelLayout layout(*g_mpi, {U, R, 0}, 1);
  const auto shards = partition_sequence(3, 9, P);
  const int64_t n = shards[size_t(layout.position())].count();
  const Tensor q = Tensor::zeros({n, 2, 4}), o({n, 2, 4});
  UspAttention usp(layout.ulysses_comm(), layout.ring_comm(), 2, 4);
  usp.prepare(*cpu, shards, layout.position());
  usp.attend(*cpu, q, q, q, o);
  const size_t bytes = usp.buffer_bytes();
  const uint64_t before = Storage::created();
  usp.prepare(*cpu, shards, layout.position());  // the next image, same shape
  usp.attend(*cpu, q, q, q, o);                  // a steady-state step
  EXPECT_EQ(Storage::created(), before) << "prepare() or attend() allocated for an unchanged shape";
  EXPECT_EQ(usp.buffer_bytes(), bytes);
  // A smaller image re-lays the same block.
  usp.prepare(*cpu, partition_sequence(3, 5, P), layout.position());
  EXPECT_EQ(Storage::created(), before) << "a smaller layout did not reuse the block";
}

// ---- DistriFusion ----------------------------------------------------------------------------

namespace {

// Fresh K (part 0) or V (part 1) of rank p at step s and layer l: [rows, H, D].
Tensor fresh_kv(int p, int s, int l, int part, int64_t rows, int64_t H, int64_t D) {
  Tensor t({rows, H, D});
  for (int64_t i = 0; i < t.numel(); ++i)
    t.f32()[i] = wave(0.113 * double(i) + 0.37 * p + 0.61 * s + 0.29 * l + 0.83 * part);
  return t;
}

}  // namespace

// Checks what the displaced attention reads and gathers: after a synchronous (warm-up) step
// every layer's buffers hold every rank's rows of that step; a displaced step attends to its
// own fresh rows and the other ranks' rows of the previous step, and leaves its gather in
// flight. Rank 1 starts the displaced step only after rank 0 has finished it, so rank 0 must
// get through it without waiting (were it to wait, the deadline would end the test) and sees
// its gathers in flight: no timing assumption.
TEST(DisplacedAttention, GathersWhatEachPeerSentAndStaysOutstanding) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  auto cpu = make_cpu_backend();
  constexpr int kLayers = 3, kHeads = 2, kDim = 4, kGoTag = 78;
  for (DType stale : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string("stale dtype ") + dtype_name(stale));
    auto comm = world_comm();
    comm->set_deadline(30);
    DisplacedPatchAttention attention(*comm, kLayers, kHeads, kDim, {/*warmup_steps=*/1, false, stale});
    const auto shards = partition_patches(3, 2 * P, 2, P);
    attention.prepare(*cpu, shards, me);
    std::vector<int64_t> offset(size_t(P) + 1, 0);
    for (int p = 0; p < P; ++p) offset[size_t(p) + 1] = offset[size_t(p)] + shards[size_t(p)].count();
    const int64_t L = offset.back(), n = shards[size_t(me)].count();
    auto rows_of = [&](int p) { return shards[size_t(p)].count(); };

    // The K/V attention must read at `step` of layer l: own rows fresh (exact), the others'
    // rows of step `source` in the stale dtype.
    auto expected_kv = [&](int step, int source, int l, int part) {
      Tensor all({L, kHeads, kDim});
      for (int p = 0; p < P; ++p) {
        const Tensor rows = p == me ? fresh_kv(p, step, l, part, rows_of(p), kHeads, kDim)
                                    : rounded(fresh_kv(p, source, l, part, rows_of(p), kHeads, kDim), stale);
        std::copy_n(rows.f32(), rows.numel(), all.f32() + offset[size_t(p)] * kHeads * kDim);
      }
      return all;
    };
    auto q_of = [&](int l) {
      Tensor q({n, kHeads, kDim});
      for (int64_t i = 0; i < q.numel(); ++i) q.f32()[i] = wave(0.71 * double(i) + 0.5 * me + 0.9 * l);
      return q;
    };
    // Every rank's rows of `step` in the buffers of every layer.
    auto check_buffers = [&](int step) {
      for (int l = 0; l < kLayers; ++l)
        for (int part = 0; part < 2; ++part) {
          const Tensor buf = (part ? attention.stale_values(l) : attention.stale_keys(l)).to_f32();
          for (int p = 0; p < P; ++p) {
            const Tensor sent = rounded(fresh_kv(p, step, l, part, rows_of(p), kHeads, kDim), stale);
            ASSERT_EQ(max_abs_diff(buf.rows(offset[size_t(p)], rows_of(p)), sent), 0.0)
                << "layer " << l << (part ? " V" : " K") << " rows of rank " << p << " after step " << step;
          }
        }
    };
    // One step over all layers; checks every layer's output against the attention of q over
    // the expected K/V.
    auto step = [&](int s, int source) {
      attention.begin_forward();
      for (int l = 0; l < kLayers; ++l) {
        const Tensor q = q_of(l), o({n, kHeads, kDim});
        attention.attend(*cpu, q, fresh_kv(me, s, l, 0, n, kHeads, kDim), fresh_kv(me, s, l, 1, n, kHeads, kDim), o);
        Tensor ref({n, kHeads, kDim});
        cpu->attention(q, expected_kv(s, source, l, 0), expected_kv(s, source, l, 1), ref, Tensor());
        EXPECT_LE(max_abs_diff(o, ref), 1e-6) << "step " << s << " layer " << l;
      }
    };

    step(0, 0);  // warm-up: synchronous, exact
    check_buffers(0);
    EXPECT_EQ(attention.stats().posted, 0);

    if (me == 1) {
      int go = 0;
      MPI_Recv(&go, 1, MPI_INT, 0, kGoTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    step(1, 0);  // displaced: the others' rows of step 0
    if (me == 0 && P > 1) {
      EXPECT_EQ(attention.stats().posted, kLayers);
      EXPECT_EQ(attention.stats().outstanding, kLayers - 1) << "rank 1 has not started: every gather is in flight";
      int go = 1;
      MPI_Send(&go, 1, MPI_INT, 1, kGoTag, MPI_COMM_WORLD);
    }
    step(2, 1);  // displaced: reads the gathers of step 1
    EXPECT_EQ(attention.stats().posted, 2 * kLayers);
    attention.drain(*cpu);
    check_buffers(2);
    comm->barrier();
  }
}

// join_each_step (steps captured as graphs on GPU ranks): each displaced gather completes at
// the end of its own step instead of where the next step reads it. The attention sees the
// same data, so the outputs equal the default's bit for bit, and after end_forward() the
// buffers hold every rank's rows of that step (nothing in flight across the step boundary).
TEST(DisplacedAttention, JoinEachStepReadsTheSameDataAndLeavesNothingInFlight) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  auto cpu = make_cpu_backend();
  constexpr int kLayers = 3, kHeads = 2, kDim = 4;
  auto comm_a = world_comm(), comm_b = world_comm();
  DisplacedOptions joined{/*warmup_steps=*/1, false, DType::f32};
  joined.join_each_step = true;
  DisplacedPatchAttention in_flight(*comm_a, kLayers, kHeads, kDim, {1, false, DType::f32});
  DisplacedPatchAttention per_step(*comm_b, kLayers, kHeads, kDim, joined);
  EXPECT_EQ(per_step.graph_kind(0), 0) << "the warm-up step";
  EXPECT_EQ(per_step.graph_kind(1), 1) << "a displaced step";
  EXPECT_EQ(per_step.graph_kind(7), 1);
  const auto shards = partition_patches(3, 2 * P, 2, P);
  in_flight.prepare(*cpu, shards, me);
  per_step.prepare(*cpu, shards, me);
  std::vector<int64_t> offset(size_t(P) + 1, 0);
  for (int p = 0; p < P; ++p) offset[size_t(p) + 1] = offset[size_t(p)] + shards[size_t(p)].count();
  const int64_t n = shards[size_t(me)].count();
  for (int s = 0; s < 4; ++s) {
    if (s == 2) per_step.set_step(2);  // as after graph replays: the caller says where it is
    in_flight.begin_forward();
    per_step.begin_forward();
    for (int l = 0; l < kLayers; ++l) {
      Tensor q({n, kHeads, kDim});
      for (int64_t i = 0; i < q.numel(); ++i) q.f32()[i] = wave(0.71 * double(i) + 0.5 * me + 0.9 * l + 0.3 * s);
      const Tensor k = fresh_kv(me, s, l, 0, n, kHeads, kDim), v = fresh_kv(me, s, l, 1, n, kHeads, kDim);
      Tensor o_a({n, kHeads, kDim}), o_b({n, kHeads, kDim});
      in_flight.attend(*cpu, q, k, v, o_a);
      per_step.attend(*cpu, q, k, v, o_b);
      EXPECT_EQ(max_abs_diff(o_a, o_b), 0.0) << "step " << s << " layer " << l;
    }
    in_flight.end_forward(*cpu);  // the default: gathers stay in flight
    per_step.end_forward(*cpu);
    for (int l = 0; l < kLayers; ++l)
      for (int p = 0; p < P; ++p) {
        const Tensor sent = fresh_kv(p, s, l, 0, shards[size_t(p)].count(), kHeads, kDim);
        EXPECT_EQ(max_abs_diff(per_step.stale_keys(l).rows(offset[size_t(p)], sent.dim(0)), sent), 0.0)
            << "step " << s << " layer " << l << ": rank " << p << "'s K rows not complete at the step's end";
      }
  }
  EXPECT_EQ(per_step.stats().posted, in_flight.stats().posted);
  in_flight.drain(*cpu);
  comm_a->barrier();
}

// Step caching (docs/step-cache.md): a cached step runs the first layers, skips the middle ones
// and runs the last. A skipped layer posts no gather and keeps what its buffers hold, so the
// next step that computes it reads the other ranks' rows of the last step that computed it;
// with join_each_step the forward is resumed after its head as after a replayed head graph.
TEST(DisplacedAttention, SkippedLayersKeepTheRowsOfTheLastStepThatComputedThem) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  auto cpu = make_cpu_backend();
  constexpr int kLayers = 3, kHeads = 2, kDim = 4;
  for (bool join : {false, true}) {
    SCOPED_TRACE(join ? "join_each_step" : "gathers in flight");
    auto comm = world_comm();
    comm->set_deadline(30);
    DisplacedOptions options{/*warmup_steps=*/1, false, DType::f32};
    options.join_each_step = join;
    DisplacedPatchAttention attention(*comm, kLayers, kHeads, kDim, options);
    const auto shards = partition_patches(3, 2 * P, 2, P);
    attention.prepare(*cpu, shards, me);
    std::vector<int64_t> offset(size_t(P) + 1, 0);
    for (int p = 0; p < P; ++p) offset[size_t(p) + 1] = offset[size_t(p)] + shards[size_t(p)].count();
    const int64_t L = offset.back(), n = shards[size_t(me)].count();
    std::vector<int> source(kLayers, 0);  // the step whose rows of layer l the others' part holds
    auto attend = [&](int s, int l) {
      Tensor q({n, kHeads, kDim}), o({n, kHeads, kDim}), ref({n, kHeads, kDim});
      for (int64_t i = 0; i < q.numel(); ++i) q.f32()[i] = wave(0.71 * double(i) + 0.5 * me + 0.9 * l + 0.3 * s);
      attention.attend(*cpu, q, fresh_kv(me, s, l, 0, n, kHeads, kDim), fresh_kv(me, s, l, 1, n, kHeads, kDim), o);
      Tensor keys({L, kHeads, kDim}), values({L, kHeads, kDim});
      for (int p = 0; p < P; ++p) {
        const int from = p == me || s == 0 ? s : source[size_t(l)];  // step 0 is synchronous
        const int64_t rows = shards[size_t(p)].count();
        const Tensor k = fresh_kv(p, from, l, 0, rows, kHeads, kDim), v = fresh_kv(p, from, l, 1, rows, kHeads, kDim);
        std::copy_n(k.f32(), k.numel(), keys.f32() + offset[size_t(p)] * kHeads * kDim);
        std::copy_n(v.f32(), v.numel(), values.f32() + offset[size_t(p)] * kHeads * kDim);
      }
      cpu->attention(q, keys, values, ref, Tensor());
      EXPECT_LE(max_abs_diff(o, ref), 1e-6) << "step " << s << " layer " << l << ": other ranks' rows of step "
                                            << source[size_t(l)] << " expected";
      source[size_t(l)] = s;
    };
    // Step 0 computed (synchronous); step 1 cached: layer 0 (head), layer 1 skipped, layer 2
    // (tail); step 2 computed in two parts: its layer 1 reads the others' rows of step 0.
    for (int s = 0; s < 3; ++s) {
      attention.set_step(s);
      attention.begin_forward();
      attend(s, 0);
      attention.resume_forward(s, 1);
      if (s == 1)
        attention.skip_layers(1);
      else
        attend(s, 1);
      attend(s, 2);
      attention.end_forward(*cpu);
    }
    EXPECT_EQ(attention.stats().posted, 2 + 3) << "a skipped layer posts no gather";
    attention.drain(*cpu);
    comm->barrier();
  }
}

TEST(DisplacedAttention, PrepareWithTheSameShardsAllocatesNothing) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  auto cpu = make_cpu_backend();
  auto comm = world_comm();
  DisplacedPatchAttention attention(*comm, 2, 2, 4, {1, false, DType::bf16});
  const auto shards = partition_patches(3, 2 * P, 2, P);
  const int64_t n = shards[size_t(me)].count();
  const Tensor q = Tensor::zeros({n, 2, 4}), o({n, 2, 4});
  auto run_image = [&] {
    attention.prepare(*cpu, shards, me);
    for (int s = 0; s < 3; ++s) {
      attention.begin_forward();
      for (int l = 0; l < 2; ++l) attention.attend(*cpu, q, q, q, o);
    }
  };
  run_image();
  const void* k0 = attention.stale_keys(0).raw();
  const uint64_t before = Storage::created();
  run_image();  // the next image: drains the last gathers, reuses buffers and exchanges
  EXPECT_EQ(Storage::created(), before) << "a second image with the same shards allocated";
  EXPECT_EQ(attention.stale_keys(0).raw(), k0) << "the buffers moved";
  comm->barrier();
}

// ---- the decoder's row partition ---------------------------------------------------------------

TEST(GroupRows, HaloRowsComeFromTheNeighboursAndSumsAddUp) {
  const int P = g_mpi->size(), me = g_mpi->rank();
  auto cpu = make_cpu_backend();
  auto comm = world_comm();
  GroupRows rows(*comm, 2 * P + 1, 4);
  const int64_t C = 3, W = 5, h = rows.latent_rows()[size_t(me)];
  rows.prepare(*cpu, C * W, DType::f32);
  const int64_t first = rows.first_row();
  auto value = [&](int64_t c, int64_t row, int64_t w, int round) { return float(c * 1000 + row * 10 + w) + 0.5f * float(round); };
  const Tensor x({C, h + 2, W});
  uint64_t before = 0;
  for (int round = 0; round < 3; ++round) {
    std::fill_n(x.f32(), x.numel(), -1.0f);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < h; ++r)
        for (int64_t w = 0; w < W; ++w) x.f32()[(c * (h + 2) + r + 1) * W + w] = value(c, first + r, w, round);
    if (round == 1) before = Storage::created();
    rows.exchange_halo(*cpu, x);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t w = 0; w < W; ++w) {
        const float top = x.f32()[(c * (h + 2)) * W + w], bottom = x.f32()[(c * (h + 2) + h + 1) * W + w];
        ASSERT_EQ(top, me > 0 ? value(c, first - 1, w, round) : -1.0f) << "halo row above";
        ASSERT_EQ(bottom, me + 1 < P ? value(c, first + h, w, round) : -1.0f) << "halo row below";
        for (int64_t r = 0; r < h; ++r) ASSERT_EQ(x.f32()[(c * (h + 2) + r + 1) * W + w], value(c, first + r, w, round));
      }
  }
  EXPECT_EQ(Storage::created(), before) << "a halo exchange of a known shape allocated";

  const Tensor sums({2, 2}, DType::f64);
  for (int i = 0; i < 4; ++i) sums.data<double>()[i] = double(me + i);
  rows.all_reduce(*cpu, sums);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sums.data<double>()[i], double(P * (P - 1) / 2 + P * i));
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
