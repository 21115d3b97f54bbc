// The text encoders (src/model/t5_encoder.hpp, clip_text.hpp) against independent PyTorch
// references written from the published architectures (tests/golden/make_t5_golden.py and
// make_clip_golden.py, t5-tiny and clip-tiny presets), on the CPU (label unit) and on the CUDA
// backend where this build has one and a GPU is visible (the *Cuda* tests, label gpu; skipped
// elsewhere).
//
// Tolerances: f32 against the float64 reference within 1e-5 relative L2 (the f32 arithmetic of
// a few hundred sums is near 1e-7; the transformer's golden test uses the same bound). bf16
// (weights and activations) by flash-attention's rule: at most twice the error of a naive bf16
// eager PyTorch run of the same model against the same float64 reference (the golden files hold
// that run), and more than 1e-4 (so the run is bf16 indeed).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "io/h5_file.hpp"
#include "src/core/difference.hpp"
#include "src/core/error.hpp"
#include "src/model/clip_text.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/t5_encoder.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {
namespace {

const std::string kGolden = FRESCO_GOLDEN_DIR;

std::vector<int32_t> int_dataset(const h5::File& f, const std::string& name) {
  const Tensor t = f.read_f32(name);  // small integers stored as float32: exact
  std::vector<int32_t> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = int32_t(t.f32()[i]);
  return v;
}

double rel_l2(const Tensor& got, const Tensor& ref) { return difference(got.to_f32(), ref).relative_l2; }

// The CUDA backend, or null where this build or machine has none.
std::unique_ptr<Backend> cuda_backend() {
  for (auto& b : available_backends())
    if (b->name() == "cuda") return std::move(b);
  return nullptr;
}

void check_t5(Backend& be, DType dtype) {
  const h5::File ref = h5::File::open(kGolden + "/t5_tiny_golden.h5");
  const std::vector<int32_t> ids = int_dataset(ref, "/ids");
  const std::optional<DType> as = dtype == DType::f32 ? std::nullopt : std::optional<DType>(dtype);
  T5Encoder t5(t5_preset("t5-tiny"), load_weights(kGolden + "/t5_tiny_weights.h5", "t5-tiny", be, as), be, dtype);
  const Tensor hidden = be.download(t5.encode(ids));
  ASSERT_EQ(hidden.shape(), (Shape{20, 32}));
  const Tensor expected = ref.read_f32("/hidden");
  const double err = rel_l2(hidden, expected);
  if (dtype == DType::f32) {
    std::printf("t5-tiny f32 on %s: relative L2 %.3e\n", be.name().c_str(), err);
    EXPECT_LT(err, 1e-5);
  } else {
    const double naive = rel_l2(ref.read_f32("/hidden_bf16"), expected);
    std::printf("t5-tiny bf16 on %s: relative L2 %.3e (bf16 eager PyTorch %.3e)\n", be.name().c_str(), err, naive);
    EXPECT_LT(err, 2 * naive);
    EXPECT_GT(err, 1e-4);
  }
  // The same length again: no new buffer, the same bits.
  const uint64_t before = Storage::created();
  const Tensor again = t5.encode(ids);
  EXPECT_EQ(Storage::created(), before);
  const Tensor again_host = be.download(again);
  EXPECT_EQ(std::memcmp(again_host.raw(), hidden.raw(), hidden.bytes()), 0);
}

void check_clip(Backend& be, DType dtype) {
  const h5::File ref = h5::File::open(kGolden + "/clip_tiny_golden.h5");
  const std::vector<int32_t> ids = int_dataset(ref, "/ids");
  const int64_t eot = ref.read_int_attr("eot");
  const std::optional<DType> as = dtype == DType::f32 ? std::nullopt : std::optional<DType>(dtype);
  ClipTextEncoder clip(clip_preset("clip-tiny"),
                       load_weights(kGolden + "/clip_tiny_weights.h5", "clip-tiny", be, as), be, dtype);
  const ClipTextOutput out = clip.encode(ids, eot);
  const Tensor hidden = be.download(out.hidden), pooled = be.download(out.pooled);
  ASSERT_EQ(hidden.shape(), (Shape{16, 48}));
  ASSERT_EQ(pooled.shape(), (Shape{48}));
  const double err_h = rel_l2(hidden, ref.read_f32("/hidden")), err_p = rel_l2(pooled, ref.read_f32("/pooled"));
  if (dtype == DType::f32) {
    std::printf("clip-tiny f32 on %s: hidden %.3e, pooled %.3e\n", be.name().c_str(), err_h, err_p);
    EXPECT_LT(err_h, 1e-5);
    EXPECT_LT(err_p, 1e-5);
  } else {
    const double naive_h = rel_l2(ref.read_f32("/hidden_bf16"), ref.read_f32("/hidden"));
    const double naive_p = rel_l2(ref.read_f32("/pooled_bf16"), ref.read_f32("/pooled"));
    std::printf("clip-tiny bf16 on %s: hidden %.3e (bf16 eager PyTorch %.3e), pooled %.3e (%.3e)\n",
                be.name().c_str(), err_h, naive_h, err_p, naive_p);
    EXPECT_LT(err_h, 2 * naive_h);
    EXPECT_LT(err_p, 2 * naive_p);
    EXPECT_GT(err_h, 1e-4);
  }
  const uint64_t before = Storage::created();
  clip.encode(ids, eot);
  EXPECT_EQ(Storage::created(), before);
}

TEST(TextEncoders, T5F32OnCpu) { check_t5(*make_cpu_backend(), DType::f32); }
TEST(TextEncoders, T5Bf16OnCpu) { check_t5(*make_cpu_backend(), DType::bf16); }
TEST(TextEncoders, ClipF32OnCpu) { check_clip(*make_cpu_backend(), DType::f32); }
TEST(TextEncoders, ClipBf16OnCpu) { check_clip(*make_cpu_backend(), DType::bf16); }

TEST(TextEncodersCuda, T5) {
  const auto cuda = cuda_backend();
  if (!cuda) GTEST_SKIP() << "no CUDA backend or GPU here";
  check_t5(*cuda, DType::f32);
  check_t5(*cuda, DType::bf16);
}

TEST(TextEncodersCuda, Clip) {
  const auto cuda = cuda_backend();
  if (!cuda) GTEST_SKIP() << "no CUDA backend or GPU here";
  check_clip(*cuda, DType::f32);
  check_clip(*cuda, DType::bf16);
}

// The buckets of the reference's position bias for t5-tiny, and T5-XXL's (32 buckets, max
// distance 128) at the edges of its exact and logarithmic ranges as docs/text-encoders.md
// derives them.
TEST(TextEncoders, T5RelativeBuckets) {
  const h5::File ref = h5::File::open(kGolden + "/t5_tiny_golden.h5");
  const std::vector<int32_t> buckets = int_dataset(ref, "/buckets");
  const T5Config tiny = t5_preset("t5-tiny");
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t j = 0; j < 20; ++j)
      EXPECT_EQ(t5_relative_bucket(j - i, tiny.buckets, tiny.max_distance), buckets[size_t(i * 20 + j)])
          << "query " << i << ", key " << j;
  const std::pair<int64_t, int> xxl[] = {{0, 0},    {-1, 1},    {-7, 7},    {-8, 8},    {-12, 9},  {-16, 10},
                                         {-32, 12}, {-64, 14},  {-127, 15}, {-128, 15}, {-511, 15}, {1, 17},
                                         {7, 23},   {8, 24},    {16, 26},   {127, 31},  {511, 31}};
  for (const auto& [relative, bucket] : xxl) EXPECT_EQ(t5_relative_bucket(relative, 32, 128), bucket) << relative;
}

// The full-size tables hold the parameters docs/text-encoders.md counts.
TEST(TextEncoders, FullSizeWeightTables) {
  const auto count = [](const std::string& preset) {
    int64_t n = 0;
    for (const auto& s : preset_weight_specs(preset)) n += shape_numel(s.shape);
    return n;
  };
  EXPECT_EQ(count("t5-xxl"), 4762310656);
  EXPECT_EQ(count("clip-l"), 123060480);
  EXPECT_EQ(preset_weight_specs("t5-xxl").size(), size_t(1 + 24 * 9 + 1 + 1));
}

TEST(TextEncoders, RefusesBadInput) {
  auto cpu = make_cpu_backend();
  T5Encoder t5(t5_preset("t5-tiny"), random_weights("t5-tiny", 1, *cpu, DType::f32), *cpu);
  EXPECT_THROW(t5.encode(std::vector<int32_t>{1, 512}), InputError);  // past the vocabulary
  EXPECT_THROW(t5.encode(std::vector<int32_t>{}), InputError);
  ClipTextEncoder clip(clip_preset("clip-tiny"), random_weights("clip-tiny", 1, *cpu, DType::f32), *cpu);
  EXPECT_THROW(clip.encode(std::vector<int32_t>(17, 1023), 0), InputError);  // more than 16 positions
  EXPECT_THROW(clip.encode(std::vector<int32_t>{1022, 1023}, 2), InputError);  // pooled position outside
  EXPECT_THROW(clip.encode(std::vector<int32_t>{1022, -1}, 1), InputError);
  EXPECT_THROW(t5_preset("t5-base"), InputError);
}

}  // namespace
}  // namespace fresco
