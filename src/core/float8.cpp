#include "src/core/float8.hpp"

#include <cmath>

namespace fresco {

float e4m3_to_float(uint8_t bits) {
  const float sign = (bits & 0x80) ? -1.0f : 1.0f;
  const int exponent = (bits >> 3) & 0xF, mantissa = bits & 0x7;
  if ((bits & 0x7F) == 0x7F) return std::nanf("");
  if (exponent == 0) return sign * std::ldexp(float(mantissa), -9);  // subnormal: m / 8 * 2^-6
  return sign * std::ldexp(float(8 + mantissa), exponent - 10);       // (1 + m/8) * 2^(e-7)
}

uint8_t float_to_e4m3(float value) {
  if (std::isnan(value)) return 0x7F;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  const float a = std::fabs(value);
  if (a >= kE4m3Max) return sign | 0x7E;  // saturate (satfinite)
  if (a == 0.0f) return sign;
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  const int exponent = e - 1;  // a in [2^exponent, 2^(exponent+1))
  if (exponent < -6) {  // subnormal range: steps of 2^-9; a rounded count of 8 becomes the first normal
    const float steps = std::nearbyint(std::ldexp(a, 9));  // round to nearest even
    return sign | uint8_t(steps);
  }
  float steps = std::nearbyint(std::ldexp(a, 3 - exponent));  // in [8, 16]
  int biased = exponent + 7;
  if (steps >= 16.0f) {
    steps = 8.0f;
    ++biased;
  }
  const int code = (biased << 3) | (int(steps) - 8);
  return sign | uint8_t(code > 0x7E ? 0x7E : code);
}

}  // namespace fresco
