// FP8 E4M3 (OCP "E4M3FN": 4 exponent bits of bias 7, 3 mantissa bits, no infinities, NaN =
// 0x7F/0xFF, largest finite 448): the wire format of Fresco's optional FP8 communication.
// Conversions round to nearest even and saturate to +-448, as the GPU's cvt with satfinite.
#pragma once

#include <cstdint>

namespace fresco {

inline constexpr float kE4m3Max = 448.0f;

float e4m3_to_float(uint8_t bits);
uint8_t float_to_e4m3(float value);

}  // namespace fresco
