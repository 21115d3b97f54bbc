// Tensor handles, row strides, storages, the arena and the 16-bit float conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"
#include "src/core/float8.hpp"
#include "src/core/tensor.hpp"

using namespace fresco;

TEST(Float16, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(-3.5f)), -3.5f);
}

TEST(Float16, F16KnownValues) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(1e6f), 0x7c00);               // overflow to infinity
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  for (uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half survives a round trip
    ASSERT_EQ(float_to_f16(f16_to_float(uint16_t(h))), h) << h;
}

TEST(Tensor, RowsShareStorage) {
  Tensor t = Tensor::zeros({4, 3});
  Tensor r = t.rows(1, 2);
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  r.f32()[0] = 5.0f;
  EXPECT_EQ(t.f32()[3], 5.0f);
  EXPECT_THROW(t.rows(3, 2), Error);
}

TEST(Tensor, DtypeConversionRoundTrip) {
  const float values[] = {0.5f, -1.25f, 3.0f, 1024.0f};
  const Tensor t = Tensor::from_floats({4}, values);
  for (DType d : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor back = t.to_dtype(d).to_f32();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(back.f32()[i], values[i]) << dtype_name(d);
  }
}

TEST(Tensor, ReshapeChecksCount) {
  Tensor t({2, 6});
  EXPECT_EQ(t.reshape({3, 4}).shape(), (Shape{3, 4}));
  EXPECT_THROW(t.reshape({5}), Error);
}

namespace {
// [rows, cols] f32 host matrix with element (r, c) = 100 r + c.
Tensor numbered(int64_t rows, int64_t cols) {
  Tensor t({rows, cols});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.f32()[r * cols + c] = float(100 * r + c);
  return t;
}
float at(const Tensor& t, int64_t r, int64_t c) { return t.data<float>()[r * t.row_stride() + c]; }
}  // namespace

TEST(Tensor, DtypeSizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_STREQ(dtype_name(DType::f64), "f64");
  EXPECT_STREQ(dtype_name(DType::i64), "i64");
  EXPECT_EQ(Tensor({2, 3}, DType::i64).bytes(), 48u);
}

TEST(Tensor, ContiguousTensorsHaveTheirRowWidthAsStride) {
  const Tensor t({4, 3, 5});
  EXPECT_EQ(t.row_numel(), 15);
  EXPECT_EQ(t.row_stride(), 15);
  EXPECT_TRUE(t.contiguous());
  EXPECT_EQ(Tensor({7}).row_numel(), 1);  // a vector: one element per row
  EXPECT_TRUE(Tensor({7}).contiguous());
}

TEST(Tensor, ColsIsAStridedViewOfTheSameStorage) {
  const Tensor m = numbered(4, 10);
  const Tensor v = m.cols(3, 4);
  EXPECT_EQ(v.shape(), (Shape{4, 4}));
  EXPECT_EQ(v.row_numel(), 4);
  EXPECT_EQ(v.row_stride(), 10);
  EXPECT_FALSE(v.contiguous());
  EXPECT_EQ(v.bytes(), 16u * 4);  // payload, not the span
  EXPECT_EQ(at(v, 2, 1), 204.0f);
  v.data<float>()[1 * 10 + 2] = -1.0f;  // element (1, 2) of the view is (1, 5) of m
  EXPECT_EQ(m.f32()[15], -1.0f);
  // A view of a view: offsets add up, the stride stays the parent's.
  const Tensor w = v.cols(1, 2);
  EXPECT_EQ(w.row_stride(), 10);
  EXPECT_EQ(at(w, 3, 0), 304.0f);
  // All columns: contiguous again.
  EXPECT_TRUE(m.cols(0, 10).contiguous());
  EXPECT_EQ(m.cols(0, 10).row_stride(), 10);
}

TEST(Tensor, ColsChecksItsArguments) {
  const Tensor m({4, 10});
  EXPECT_THROW(m.cols(8, 3), Error);
  EXPECT_THROW(m.cols(-1, 2), Error);
  EXPECT_THROW(Tensor({4, 2, 5}).cols(0, 1), Error);  // cols() takes a matrix
  EXPECT_THROW(Tensor({4}).cols(0, 1), Error);
}

TEST(Tensor, RowsOfAStridedViewKeepTheStride) {
  const Tensor m = numbered(6, 10);
  const Tensor r = m.cols(2, 5).rows(3, 2);
  EXPECT_EQ(r.shape(), (Shape{2, 5}));
  EXPECT_EQ(r.row_stride(), 10);
  EXPECT_FALSE(r.contiguous());
  EXPECT_EQ(at(r, 0, 0), 302.0f);
  EXPECT_EQ(at(r, 1, 4), 406.0f);
  // One row of a strided view is dense.
  const Tensor one = m.cols(2, 5).rows(4, 1);
  EXPECT_TRUE(one.contiguous());
  EXPECT_EQ(one.to_vector(), (std::vector<float>{402, 403, 404, 405, 406}));
  EXPECT_THROW(m.cols(2, 5).rows(5, 2), Error);
}

TEST(Tensor, ReshapeOfAStridedTensorOnlyRegroupsTheInnerDimensions) {
  const Tensor m = numbered(4, 12);
  const Tensor v = m.cols(6, 6);  // [4, 6], row stride 12
  const Tensor heads = v.reshape({4, 2, 3});
  EXPECT_EQ(heads.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(heads.row_stride(), 12);
  EXPECT_EQ(heads.row_numel(), 6);
  EXPECT_EQ(heads.reshape({4, 6}).row_stride(), 12);
  EXPECT_EQ(heads.data<float>()[2 * 12 + 4], 210.0f);  // (2, 1, 1) -> column 6 + 4
  EXPECT_THROW(v.reshape({2, 12}), Error);  // rows are not adjacent in memory
  EXPECT_THROW(v.reshape({24}), Error);
  EXPECT_THROW(v.reshape({4, 5}), Error);   // element count
  // A contiguous tensor reshapes freely, and so does a single row of a strided one.
  EXPECT_EQ(m.reshape({8, 6}).shape(), (Shape{8, 6}));
  const Tensor row = v.rows(1, 1).reshape({2, 3});
  EXPECT_TRUE(row.contiguous());
  EXPECT_EQ(row.row_stride(), 3);
  EXPECT_EQ(row.data<float>()[4], 110.0f);
}

TEST(Tensor, F32AccessNeedsAContiguousF32HostTensor) {
  const Tensor m({3, 8});
  EXPECT_NO_THROW(m.f32());
  EXPECT_THROW(m.cols(1, 2).f32(), Error);
  EXPECT_THROW(Tensor({3}, DType::bf16).f32(), Error);
  EXPECT_THROW(Tensor().raw(), Error);
}

TEST(Tensor, CopiesOfStridedTensorsAreDense) {
  const Tensor m = numbered(3, 7);
  const Tensor v = m.cols(2, 3);
  const std::vector<float> expected = {2, 3, 4, 102, 103, 104, 202, 203, 204};
  EXPECT_EQ(v.to_vector(), expected);
  const Tensor c = v.clone();
  EXPECT_TRUE(c.contiguous());
  EXPECT_EQ(c.shape(), (Shape{3, 3}));
  EXPECT_EQ(c.to_vector(), expected);
  const Tensor h = v.to_dtype(DType::bf16);  // small integers are exact in bf16
  EXPECT_EQ(h.dtype(), DType::bf16);
  EXPECT_TRUE(h.contiguous());
  EXPECT_EQ(h.to_f32().to_vector(), expected);
  // to_f32 of a strided 16-bit tensor
  const Tensor wide = numbered(3, 7).to_dtype(DType::f16);
  EXPECT_EQ(wide.cols(2, 3).to_f32().to_vector(), expected);
  EXPECT_EQ(wide.cols(2, 3).to_vector(), expected);
  // f64 reads as f32 too; integers do not
  const Tensor d = numbered(2, 2).to_dtype(DType::f64);
  EXPECT_EQ(d.to_vector(), (std::vector<float>{0, 1, 100, 101}));
  EXPECT_THROW(Tensor({2}, DType::i64).to_f32(), Error);
}

TEST(Tensor, DescribeNamesTheStride) {
  EXPECT_EQ(Tensor({3, 4}).describe(), "f32[3, 4] on cpu");
  EXPECT_EQ(Tensor({3, 12}, DType::bf16).cols(4, 4).describe(), "bf16[3, 4] on cpu, row stride 12");
  EXPECT_EQ(Tensor({2, 2}, DType::i64).describe(), "i64[2, 2] on cpu");
}

TEST(Storage, HostMemoryIsAlignedAndCounted) {
  const uint64_t before = Storage::created();
  for (size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(4096)}) {
    const auto s = Storage::host(bytes);
    EXPECT_EQ(s->bytes(), bytes);
    EXPECT_EQ(s->device(), Device::cpu);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s->data()) % 64, 0u);
  }
  EXPECT_EQ(Storage::created(), before + 4);
  const Tensor t({5, 6});  // a host tensor is one storage
  EXPECT_EQ(Storage::created(), before + 5);
  // views create none
  const Tensor v = t.rows(1, 3).cols(2, 2).reshape({3, 2, 1});
  (void)Tensor::from_storage(Storage::host(64), 0, {4}, DType::f32);
  EXPECT_EQ(Storage::created(), before + 6);
  (void)v;
}

TEST(Storage, ReleaseRunsOnceWhenTheLastHandleGoes) {
  static int released = 0;
  static float memory[16];
  released = 0;
  {
    Tensor view;
    {
      auto s = std::make_shared<Storage>(Device::cuda, memory, sizeof memory, [](void* p) {
        EXPECT_EQ(p, memory);
        ++released;
      });
      const Tensor t = Tensor::from_storage(s, 8, {2, 2}, DType::f32);
      EXPECT_EQ(t.raw(), static_cast<void*>(memory + 2));
      EXPECT_EQ(t.device(), Device::cuda);
      view = t.cols(1, 1);
    }
    EXPECT_EQ(released, 0);  // the view keeps the storage
  }
  EXPECT_EQ(released, 1);
  // A storage without a release function (an arena's view of someone else's memory) is fine.
  { Storage s(Device::cpu, memory, sizeof memory, nullptr); }
}

TEST(Storage, ViewsMustFitTheirStorage) {
  const auto s = Storage::host(100);
  EXPECT_NO_THROW(Tensor::from_storage(s, 60, {10}, DType::f32));
  EXPECT_THROW(Tensor::from_storage(s, 64, {10}, DType::f32), Error);
}

namespace {
// A layout function as an owner would write one: the same takes, measured then real.
std::vector<Tensor> layout(Arena& arena) {
  return {arena.take({3, 5}, DType::f32), arena.take({7}, DType::bf16), arena.take({0, 4}, DType::f32),
          arena.take({2, 2}, DType::f64), arena.take({1}, DType::i64)};
}
}  // namespace

TEST(Arena, MeasuringCountsAlignedBytesAndHandsOutShapes) {
  Arena measure;
  EXPECT_TRUE(measure.measuring());
  EXPECT_EQ(measure.capacity(), 0u);
  const uint64_t storages = Storage::created();
  const auto t = layout(measure);
  EXPECT_EQ(Storage::created(), storages);
  for (const Tensor& x : t) EXPECT_FALSE(x.defined());
  EXPECT_EQ(t[0].shape(), (Shape{3, 5}));
  EXPECT_EQ(t[1].dtype(), DType::bf16);
  // 60 bytes at 0, 14 at 256, 0 at 512, 32 at 512, 8 at 768
  EXPECT_EQ(measure.used(), 768u + 8);
  measure.reset();
  EXPECT_EQ(measure.used(), 0u);
}

TEST(Arena, RealModeHandsOutAlignedViewsOfOneBlock) {
  Arena measure;
  layout(measure);
  const auto block = Storage::host(measure.used());
  Arena arena(block);
  EXPECT_FALSE(arena.measuring());
  EXPECT_EQ(arena.capacity(), measure.used());
  const uint64_t storages = Storage::created();
  const auto t = layout(arena);
  EXPECT_EQ(Storage::created(), storages);  // views, no allocation
  EXPECT_EQ(arena.used(), measure.used());
  const auto* base = static_cast<const char*>(block->data());
  const size_t offsets[] = {0, 256, 512, 512, 768};
  for (size_t i = 0; i < t.size(); ++i) {
    ASSERT_TRUE(t[i].defined());
    EXPECT_TRUE(t[i].contiguous());
    EXPECT_EQ(static_cast<const char*>(t[i].raw()) - base, std::ptrdiff_t(offsets[i])) << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t[i].raw()) % 64, 0u);  // the host block is 64-aligned
    EXPECT_EQ(size_t(static_cast<const char*>(t[i].raw()) - base) % Arena::kAlignment, 0u);
  }
  t[0].f32()[14] = 3.0f;  // the whole first tensor is writable
  // reset: the same layout gets the same addresses (what captured graphs rely on)
  arena.reset();
  const auto again = layout(arena);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(again[i].raw(), t[i].raw());
}

TEST(Arena, OverflowIsAnInternalError) {
  Arena arena(Storage::host(300));
  EXPECT_NO_THROW(arena.take({64}, DType::f32));   // bytes [0, 256)
  EXPECT_NO_THROW(arena.take({11}, DType::f32));   // bytes [256, 300)
  EXPECT_THROW(arena.take({1}, DType::f32), Error);  // would start at 512
  arena.reset();
  EXPECT_THROW(arena.take({76}, DType::f32), Error);  // 304 bytes
}

// FP8 E4M3 (OCP E4M3FN) conversions: known codes, ties to even, saturation, every code back.
TEST(Float8, KnownCodesRoundingAndSaturation) {
  EXPECT_EQ(float_to_e4m3(1.0f), 0x38);
  EXPECT_EQ(float_to_e4m3(0.5f), 0x30);
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(1000.0f), 0x7E);    // saturates, never NaN
  EXPECT_EQ(float_to_e4m3(-1000.0f), 0xFE);
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -9)), 0x01);   // the smallest subnormal
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -6)), 0x08);   // the smallest normal
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -11)), 0x00);  // below half the smallest subnormal
  EXPECT_EQ(float_to_e4m3(1.0625f), 0x38);  // halfway 1 | 1.125: to the even mantissa
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3A);  // halfway 1.125 | 1.25: to the even mantissa
  EXPECT_EQ(float_to_e4m3(std::nanf("")), 0x7F);
  EXPECT_FLOAT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_FLOAT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xFF)));
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(uint8_t(code))), code) << "code " << code;
  }
}
