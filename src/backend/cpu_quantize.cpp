// The CPU reference of FP8: per-row scaled e4m3 (backend.hpp, quantize_rows) for communication,
// and the FP8 linear's exact emulation (linear_fp8: e4m3 values widened exactly to f32, the
// product in f32, then the scales, bias and epilogue).
#include <algorithm>
#include <cmath>

#include "src/backend/cpu_backend.hpp"
#include "src/backend/cpu_staging.hpp"
#include "src/backend/op_checks.hpp"
#include "src/core/float8.hpp"

namespace fresco {
namespace {

// q's rows: `width` bytes each, `ld` bytes apart.
struct ByteRows {
  uint8_t* data;
  int64_t ld;
};
ByteRows byte_rows(const Tensor& q) { return {q.data<uint8_t>(), cpu::matrix_of(q).ld}; }

// One row of quantize_rows: its scale, and its e4m3 bytes into q.
float quantize_row(const float* row, int64_t width, uint8_t* q) {
  float amax = 0;
  for (int64_t c = 0; c < width; ++c) amax = std::max(amax, std::fabs(row[c]));
  // The same f32 operations as the CUDA kernel, so both produce the same bytes.
  const float s = amax > 0 ? amax / kE4m3Max : 1.0f;
  for (int64_t c = 0; c < width; ++c) q[c] = float_to_e4m3(row[c] / s);
  return s;
}

}  // namespace

void CpuBackend::quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) {
  // x: [R, C] compute dtype -> q: [R, C] e4m3, scales: [R] f32
  op_checks::quantized_rows(x, q, scales, "quantize_rows");
  const cpu::Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const ByteRows out = byte_rows(q);
  float* scale = scales.data<float>();
#pragma omp parallel for if (in.rows * in.width > (1 << 15))
  for (int64_t r = 0; r < in.rows; ++r) scale[r] = quantize_row(in.row(r), in.width, out.data + r * out.ld);
}

void CpuBackend::norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                   const Tensor& q, const Tensor& scales) {
  // x: [L, C] compute dtype -> q: [L, C] e4m3, scales: [L] f32
  op_checks::quantized_rows(x, q, scales, "norm_modulate_fp8");
  op_checks::matrix(x, "norm_modulate_fp8");
  const cpu::Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const int64_t L = in.rows, C = in.width;
  op_checks::numel(shift, C, "norm_modulate_fp8", "shift");
  op_checks::numel(scale, C, "norm_modulate_fp8", "scale");
  const float* sh = cpu::dense(shift, scratch_, cpu::kVec0);
  const float* sc = cpu::dense(scale, scratch_, cpu::kVec1);
  const cpu::Rows rows{scratch_.get(cpu::kTmp, size_t(L * C)), L, C, C};
  modulated(in, sh, sc, true, eps, rows);
  const ByteRows out = byte_rows(q);
  float* s = scales.data<float>();
  const DType dt = x.dtype();
#pragma omp parallel for if (L * C > (1 << 15))
  for (int64_t r = 0; r < L; ++r) {
    float* row = rows.row(r);
    cpu::with_float_dtype(dt, [&](auto e) {  // the values norm_modulate would store in x's dtype
      for (int64_t c = 0; c < C; ++c) row[c] = e.load(e.store(row[c]));
    });
    s[r] = quantize_row(row, C, out.data + r * out.ld);
  }
}

void CpuBackend::dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) {
  // q: [R, C] e4m3, scales: [R] f32 -> y: [R, C] compute dtype
  op_checks::quantized_rows(y, q, scales, "dequantize_rows");
  const cpu::Rows out = cpu::write(y, scratch_, cpu::kOut);
  const ByteRows in = byte_rows(q);
  const float* scale = scales.data<float>();
#pragma omp parallel for if (out.rows * out.width > (1 << 15))
  for (int64_t r = 0; r < out.rows; ++r)
    for (int64_t c = 0; c < out.width; ++c) out.row(r)[c] = e4m3_to_float(in.data[r * in.ld + c]) * scale[r];
  cpu::store(out, y);
}

void CpuBackend::linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                            const Tensor* bias, const Tensor& y, Epilogue epilogue, const Tensor* gate) {
  op_checks::linear_fp8(xq, x_scale, wq, w_scale, bias, y, epilogue == Epilogue::gated_residual, gate);
  const int64_t M = xq.dim(0), K = xq.dim(1), N = wq.dim(0);
  // Every e4m3 value is exact in f32, so the widened operands are the quantized values themselves.
  float* x = scratch_.get(cpu::kIn0, size_t(M * K));
  float* w = scratch_.get(cpu::kWeight, size_t(N * K));
  const ByteRows xb = byte_rows(xq);
  const uint8_t* wb = wq.data<uint8_t>();
#pragma omp parallel for if (M * K > (1 << 15))
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) x[m * K + k] = e4m3_to_float(xb.data[m * xb.ld + k]);
#pragma omp parallel for if (N * K > (1 << 15))
  for (int64_t i = 0; i < N * K; ++i) w[i] = e4m3_to_float(wb[i]);
  product_epilogue(cpu::Rows{x, M, K, K}, w, N, bias, x_scale.data<float>(), w_scale.data<float>(), epilogue,
                   gate, y);
}

}  // namespace fresco
