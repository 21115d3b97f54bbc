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

}  // namespace

void CpuBackend::quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) {
  // x: [R, C] compute dtype -> q: [R, C] e4m3, scales: [R] f32
  op_checks::quantized_rows(x, q, scales, "quantize_rows");
  const cpu::Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const ByteRows out = byte_rows(q);
  float* scale = scales.data<float>();
#pragma omp parallel for if (in.rows * in.width > (1 << 15))
  for (int64_t r = 0; r < in.rows; ++r) {
    const float* row = in.row(r);
    float amax = 0;
    for (int64_t c = 0; c < in.width; ++c) amax = std::max(amax, std::fabs(row[c]));
    // The same f32 operations as the CUDA kernel, so both produce the same bytes.
    const float s = amax > 0 ? amax / kE4m3Max : 1.0f;
    scale[r] = s;
    for (int64_t c = 0; c < in.width; ++c) out.data[r * out.ld + c] = float_to_e4m3(row[c] / s);
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
