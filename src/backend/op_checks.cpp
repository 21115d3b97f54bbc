#include "src/backend/op_checks.hpp"

#include <string>

#include "src/core/error.hpp"

namespace fresco::op_checks {

void same_shape(const Tensor& a, const Tensor& b, const char* op) {
  FRESCO_ASSERT(a.shape() == b.shape(),
                std::string(op) + ": shape mismatch " + a.describe() + " vs " + b.describe());
}

void matrix(const Tensor& x, const char* op) {
  FRESCO_ASSERT(x.rank() <= 2, std::string(op) + ": expected [L, C], got " + x.describe());
}

void numel(const Tensor& t, int64_t n, const char* op, const char* what) {
  FRESCO_ASSERT(t.numel() == n, std::string(op) + ": " + what + " " + t.describe() + " should have " +
                                    std::to_string(n) + " elements");
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse) {
  FRESCO_ASSERT(q.rank() == 3 && k.rank() == 3 && v.shape() == k.shape() && o.shape() == q.shape(),
                "attention: q " + q.describe() + ", k " + k.describe() + ", v " + v.describe() +
                    ", o " + o.describe());
  FRESCO_ASSERT(k.dim(1) == q.dim(1) && k.dim(2) == q.dim(2), "attention: heads of k differ from q");
  FRESCO_ASSERT(!lse.defined() || (lse.dtype() == DType::f32 && lse.contiguous() &&
                                   lse.numel() == q.dim(0) * q.dim(1)),
                "attention: lse " + lse.describe() + " should be f32 [Lq, H]");
}

void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  const DType dt = q.dtype();
  FRESCO_ASSERT((dt == DType::bf16 || dt == DType::f16) && k.dtype() == dt && v.dtype() == dt && o.dtype() == dt,
                "attention_fp8: q " + q.describe() + ", k " + k.describe() + ", v " + v.describe() + ", o " +
                    o.describe() + " should share one 16-bit compute dtype (bf16, f16)");
}

void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                    const Tensor& o) {
  attention(q, k, v, o, Tensor());
  const int64_t Lq = q.dim(0), H = q.dim(1), Lk = k.dim(0);
  FRESCO_ASSERT(!bias || (bias->dtype() == DType::f32 && bias->contiguous() && bias->numel() == H * Lq * Lk),
                "attention_bias: bias " + (bias ? bias->describe() : std::string()) + " should be f32 [" +
                    std::to_string(H) + ", " + std::to_string(Lq) + ", " + std::to_string(Lk) + "]");
  FRESCO_ASSERT(!causal || Lq <= Lk, "attention_bias: a causal mask needs Lq <= Lk, got q " + q.describe() +
                                         ", k " + k.describe());
}

void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) {
  FRESCO_ASSERT(table.defined() && ids.defined() && y.defined(), "gather_rows: undefined operand");
  FRESCO_ASSERT(table.rank() == 2 && table.contiguous(), "gather_rows: table " + table.describe() +
                                                             " should be a dense [V, C]");
  FRESCO_ASSERT(ids.dtype() == DType::i64 && ids.contiguous() && ids.rank() == 1,
                "gather_rows: ids " + ids.describe() + " should be a dense i64 [L]");
  FRESCO_ASSERT(y.rank() == 2 && y.dim(0) == ids.numel() && y.dim(1) == table.dim(1),
                "gather_rows: y " + y.describe() + " for ids " + ids.describe() + " and table " + table.describe());
}

void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y, const char* op) {
  same_shape(x, y, op);
  FRESCO_ASSERT(x.rank() == 3 && x.dim(2) % 2 == 0,
                std::string(op) + ": expected [L, H, D], got " + x.describe());
  const int64_t L = x.dim(0), P = x.dim(2) / 2;
  numel(cos, L * P, op, "cos");
  numel(sin, L * P, op, "sin");
}

void rms_norm_rope(const Tensor& x, const Tensor& scale, const Tensor& cos, const Tensor& sin,
                   const Tensor& y) {
  rope(x, cos, sin, y, "rms_norm_rope");
  numel(scale, x.dim(2), "rms_norm_rope", "scale");
}

void binary(const Tensor& a, const Tensor& b, const Tensor& y, const char* op) {
  FRESCO_ASSERT(a.defined() && b.defined() && y.defined(), std::string(op) + ": undefined operand");
  same_shape(a, b, op);
  same_shape(a, y, op);
}

void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) {
  FRESCO_ASSERT(a.defined() && b.defined() && sums.defined(), "change_sums: undefined operand");
  FRESCO_ASSERT(a.shape() == b.shape() && a.dtype() == b.dtype(),
                "change_sums: a " + a.describe() + " and b " + b.describe() +
                    " must have one shape and one dtype");
  FRESCO_ASSERT(a.dtype() == DType::f32 || a.dtype() == DType::bf16 || a.dtype() == DType::f16,
                "change_sums: a and b must be f32, bf16 or f16, got " + a.describe());
  FRESCO_ASSERT(sums.dtype() == DType::f64 && sums.contiguous() && sums.numel() == 2,
                "change_sums: sums " + sums.describe() + " should be f64 [2] (sum |a - b|, sum |b|)");
}

void quantized_rows(const Tensor& values, const Tensor& q, const Tensor& scales, const char* op) {
  FRESCO_ASSERT(values.defined() && q.defined() && scales.defined(), std::string(op) + ": undefined operand");
  FRESCO_ASSERT(q.dtype() == DType::e4m3, std::string(op) + ": q must be e4m3, got " + q.describe());
  FRESCO_ASSERT(values.rank() >= 2 && q.rank() >= 2 && values.dim(0) == q.dim(0) &&
                    values.row_numel() == q.row_numel(),
                std::string(op) + ": " + values.describe() + " and " + q.describe() + " differ in shape");
  FRESCO_ASSERT(scales.dtype() == DType::f32 && scales.contiguous() && scales.numel() == values.dim(0),
                std::string(op) + ": scales " + scales.describe() + " should be f32 [" +
                    std::to_string(values.dim(0)) + "]");
}

void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                const Tensor* bias, const Tensor& y, bool gated, const Tensor* gate) {
  FRESCO_ASSERT(xq.defined() && x_scale.defined() && wq.defined() && w_scale.defined() && y.defined(),
                "linear_fp8: undefined operand");
  FRESCO_ASSERT(xq.dtype() == DType::e4m3 && wq.dtype() == DType::e4m3 && xq.rank() == 2 && wq.rank() == 2 &&
                    wq.contiguous() && xq.dim(1) == wq.dim(1),
                "linear_fp8: operands " + xq.describe() + " and " + wq.describe() +
                    " should be e4m3 [M, K] and a dense e4m3 [N, K]");
  const int64_t M = xq.dim(0), N = wq.dim(0);
  FRESCO_ASSERT(y.rank() == 2 && y.dim(0) == M && y.dim(1) == N,
                "linear_fp8: output " + y.describe() + " for " + xq.describe() + " and " + wq.describe());
  FRESCO_ASSERT(x_scale.dtype() == DType::f32 && x_scale.contiguous() && x_scale.numel() == M &&
                    w_scale.dtype() == DType::f32 && w_scale.contiguous() && w_scale.numel() == N,
                "linear_fp8: scales " + x_scale.describe() + " / " + w_scale.describe() + " should be f32 [" +
                    std::to_string(M) + "] / [" + std::to_string(N) + "]");
  FRESCO_ASSERT(!bias || (bias->contiguous() && bias->numel() == N), "linear_fp8: bias " + bias->describe());
  FRESCO_ASSERT(gated == (gate != nullptr), "linear_fp8: a gate goes with the gated_residual epilogue");
  FRESCO_ASSERT(!gate || (gate->contiguous() && gate->numel() == N), "linear_fp8: gate " + gate->describe());
}

}  // namespace fresco::op_checks
