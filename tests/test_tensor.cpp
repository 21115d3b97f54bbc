// Tensor handles and the 16-bit float conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"
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
