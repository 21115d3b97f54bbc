// Scalar conversions between float32 and the two 16-bit float formats Fresco stores:
// IEEE half (f16) and bfloat16 (bf16: the top 16 bits of a float32, round to nearest even).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fresco {

float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);
float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);

// Bulk forms, threaded for large tensors.
void bf16_to_float(const uint16_t* src, float* dst, size_t n);
void float_to_bf16(const float* src, uint16_t* dst, size_t n);
void f16_to_float(const uint16_t* src, float* dst, size_t n);
void float_to_f16(const float* src, uint16_t* dst, size_t n);

}  // namespace fresco
