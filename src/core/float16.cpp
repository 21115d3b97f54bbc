#include "src/core/float16.hpp"

#include <bit>
#include <cmath>

namespace fresco {

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

uint16_t float_to_bf16(float value) {
  uint32_t u = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return uint16_t((u >> 16) | 0x40);  // keep it a NaN
  u += 0x7fff + ((u >> 16) & 1);                             // round to nearest even
  return uint16_t(u >> 16);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_f16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const float a = std::fabs(value);
  if (std::isnan(value)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;  // rounds to infinity
  if (a < 6.103515625e-05f) {               // subnormal range: multiples of 2^-24
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));
  }
  uint32_t bits = std::bit_cast<uint32_t>(a);
  bits += 0xfff + ((bits >> 13) & 1);  // round mantissa to 10 bits, nearest even
  return sign | uint16_t(((bits >> 23) - 112) << 10 | ((bits >> 13) & 0x3ff));
}

namespace {
// Applies a scalar conversion to n elements, threaded for large tensors.
template <typename Src, typename Dst, typename Convert>
void convert_all(const Src* src, Dst* dst, size_t n, Convert convert) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; ++i) dst[i] = convert(src[i]);
}
}  // namespace

void bf16_to_float(const uint16_t* src, float* dst, size_t n) {
  convert_all(src, dst, n, [](uint16_t v) { return bf16_to_float(v); });
}
void float_to_bf16(const float* src, uint16_t* dst, size_t n) {
  convert_all(src, dst, n, [](float v) { return float_to_bf16(v); });
}
void f16_to_float(const uint16_t* src, float* dst, size_t n) {
  convert_all(src, dst, n, [](uint16_t v) { return f16_to_float(v); });
}
void float_to_f16(const float* src, uint16_t* dst, size_t n) {
  convert_all(src, dst, n, [](float v) { return float_to_f16(v); });
}

}  // namespace fresco
