// Operand checks shared by every backend: shapes and sizes an op requires whatever runs it. A
// failure is a caller bug, hence FRESCO_ASSERT. (No Shape is built on the success path: a check
// allocates nothing.) Backend-specific requirements (devices, supported dtypes) stay with the
// backend.
#pragma once

#include <cstdint>

#include "src/core/tensor.hpp"

namespace fresco::op_checks {

void same_shape(const Tensor& a, const Tensor& b, const char* op);
// The row-wise ops of the transformer take [L, C] (or a vector [C]): C is the row.
void matrix(const Tensor& x, const char* op);
void numel(const Tensor& t, int64_t n, const char* op, const char* what);
// q, o: [Lq, H, D]; k, v: [Lk, H, D]; lse (when defined): f32 [Lq, H], contiguous.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse);
// attention_fp8's dtypes (after attention's checks): q, k, v and o of one 16-bit compute dtype.
void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o);
// attention's operands without lse; bias (when given): f32 [H, Lq, Lk], contiguous; causal:
// Lq <= Lk.
void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                    const Tensor& o);
// gather_rows: table [V, C] dense; ids i64 [L] dense; y [L, C].
void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y);
// x, y: [L, H, D] with D even; cos, sin: [L, D/2].
void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y, const char* op);
// rope's operands and scale: [D].
void rms_norm_rope(const Tensor& x, const Tensor& scale, const Tensor& cos, const Tensor& sin,
                   const Tensor& y);

// subtract (and add): a, b and y of one shape.
void binary(const Tensor& a, const Tensor& b, const Tensor& y, const char* op);
// change_sums: a and b of one shape and one float dtype (f32, bf16, f16); sums: f64 [2],
// contiguous.
void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums);

// quantize_rows / dequantize_rows: `values` (a compute dtype) and `q` (e4m3) of one shape,
// rows of row_numel() values; scales: f32 [rows], contiguous.
void quantized_rows(const Tensor& values, const Tensor& q, const Tensor& scales, const char* op);

// linear_fp8: xq e4m3 [M, K]; x_scale f32 [M]; wq e4m3 [N, K] dense; w_scale f32 [N]; bias [N] or
// null; y [M, N]; a gate [N] exactly with the gated_residual epilogue.
void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                const Tensor* bias, const Tensor& y, bool gated, const Tensor* gate);

}  // namespace fresco::op_checks
