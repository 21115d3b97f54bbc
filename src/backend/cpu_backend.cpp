#include "src/backend/cpu_backend.hpp"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"

namespace fresco {
namespace {

// Shape checks of the CPU ops; a failure is a caller bug, hence FRESCO_ASSERT.
void expect_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  FRESCO_ASSERT(a.shape() == b.shape(),
                std::string(op) + ": shape mismatch " + a.describe() + " vs " + b.describe());
}

// Rows and columns of a tensor seen as a matrix [rows, last dim].
int64_t cols_of(const Tensor& t) { return t.dim(-1); }
int64_t rows_of(const Tensor& t) { return t.numel() / cols_of(t); }

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

bool CpuBackend::supports(Op op, DType dtype) const {
  if (op == Op::convert) return true;  // f32 <-> any of f32, bf16, f16
  return op != Op::count && dtype == DType::f32;
}

void CpuBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias,
                        const Tensor& y) {
  // x: [M, K] (leading dims flattened), weight: [N, K] (PyTorch layout), bias: [N], y: [M, N]
  const int64_t K = cols_of(x), M = rows_of(x), N = weight.dim(0);
  FRESCO_ASSERT(weight.rank() == 2 && weight.dim(1) == K,
                "linear: weight " + weight.describe() + " does not match input " + x.describe());
  FRESCO_ASSERT(rows_of(y) == M && cols_of(y) == N, "linear: output " + y.describe());
  float* out = y.f32();
  float beta = 0.0f;
  if (bias) {
    FRESCO_ASSERT(bias->numel() == N, "linear: bias " + bias->describe());
    const float* b = bias->f32();
#pragma omp parallel for
    for (int64_t m = 0; m < M; ++m) std::memcpy(out + m * N, b, size_t(N) * sizeof(float));
    beta = 1.0f;
  }
  if (M == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x.f32(),
              int(K), weight.f32(), int(K), beta, out, int(N));
}

void CpuBackend::layer_norm(const Tensor& x, float eps, const Tensor& y) {
  // x, y: [L, C]; statistics per row in double so the reference is not the weak link.
  expect_same_shape(x, y, "layer_norm");
  const int64_t C = cols_of(x), L = rows_of(x);
  const float* in = x.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l) {
    const float* r = in + l * C;
    double mean = 0.0;
    for (int64_t c = 0; c < C; ++c) mean += r[c];
    mean /= double(C);
    double var = 0.0;
    for (int64_t c = 0; c < C; ++c) var += (r[c] - mean) * (r[c] - mean);
    var /= double(C);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) out[l * C + c] = float((r[c] - mean) * inv);
  }
}

void CpuBackend::modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                          const Tensor& y) {
  // x, y: [L, C]; shift, scale: [C]
  expect_same_shape(x, y, "modulate");
  const int64_t C = cols_of(x), L = rows_of(x);
  FRESCO_ASSERT(shift.numel() == C && scale.numel() == C, "modulate: shift/scale width");
  const float *in = x.f32(), *sh = shift.f32(), *sc = scale.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    for (int64_t c = 0; c < C; ++c) out[l * C + c] = (1.0f + sc[c]) * in[l * C + c] + sh[c];
}

void CpuBackend::rms_norm_heads(const Tensor& x, const Tensor& scale, float eps,
                                const Tensor& y) {
  // x, y: [L, H, D] (any leading dims); scale: [D]
  expect_same_shape(x, y, "rms_norm_heads");
  const int64_t D = cols_of(x), rows = rows_of(x);
  FRESCO_ASSERT(scale.numel() == D, "rms_norm_heads: scale " + scale.describe());
  const float *in = x.f32(), *s = scale.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = in + r * D;
    double ms = 0.0;
    for (int64_t d = 0; d < D; ++d) ms += double(v[d]) * v[d];
    const float inv = float(1.0 / std::sqrt(ms / double(D) + eps));
    for (int64_t d = 0; d < D; ++d) out[r * D + d] = v[d] * inv * s[d];
  }
}

void CpuBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) {
  // x, y: [L, H, D]; cos, sin: [L, D/2] (one angle per token and channel pair)
  expect_same_shape(x, y, "rope");
  FRESCO_ASSERT(x.rank() == 3, "rope: expected [L, H, D], got " + x.describe());
  const int64_t L = x.dim(0), H = x.dim(1), D = x.dim(2), P = D / 2;
  FRESCO_ASSERT(cos.numel() == L * P && sin.numel() == L * P, "rope: table " + cos.describe());
  const float *in = x.f32(), *c = cos.f32(), *s = sin.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < P; ++p) {
        const int64_t i = (l * H + h) * D + 2 * p;
        const float x0 = in[i], x1 = in[i + 1], cp = c[l * P + p], sp = s[l * P + p];
        out[i] = cp * x0 - sp * x1;
        out[i + 1] = sp * x0 + cp * x1;
      }
}

void CpuBackend::gelu_tanh(const Tensor& x, const Tensor& y) {
  expect_same_shape(x, y, "gelu_tanh");
  const float k = float(std::sqrt(2.0 / std::numbers::pi));
  const float* in = x.f32();
  float* out = y.f32();
  const int64_t n = x.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const float v = in[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void CpuBackend::silu(const Tensor& x, const Tensor& y) {
  expect_same_shape(x, y, "silu");
  const float* in = x.f32();
  float* out = y.f32();
  const int64_t n = x.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] / (1.0f + std::exp(-in[i]));
}

void CpuBackend::gated_residual(const Tensor& x, const Tensor& gate, const Tensor& y) {
  // x: [L, C] updated in place; gate: [C]; y: [L, C]
  expect_same_shape(x, y, "gated_residual");
  const int64_t C = cols_of(x), L = rows_of(x);
  FRESCO_ASSERT(gate.numel() == C, "gated_residual: gate " + gate.describe());
  float* acc = x.f32();
  const float *g = gate.f32(), *in = y.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    for (int64_t c = 0; c < C; ++c) acc[l * C + c] += g[c] * in[l * C + c];
}

void CpuBackend::add(const Tensor& a, const Tensor& b, const Tensor& y) {
  expect_same_shape(a, b, "add");
  expect_same_shape(a, y, "add");
  const float *pa = a.f32(), *pb = b.f32();
  float* out = y.f32();
  const int64_t n = a.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) out[i] = pa[i] + pb[i];
}

void CpuBackend::axpy(float alpha, const Tensor& x, const Tensor& y) {
  expect_same_shape(x, y, "axpy");
  const float* in = x.f32();
  float* out = y.f32();
  const int64_t n = x.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) out[i] += alpha * in[i];
}

void CpuBackend::timestep_embedding(float t, const Tensor& out) {
  // out: [2 * half] = [cos(1000 t f_k)..., sin(1000 t f_k)...], f_k = 10000^(-k/half)
  const int64_t half = out.numel() / 2;
  FRESCO_ASSERT(out.numel() == 2 * half, "timestep_embedding: odd width");
  float* e = out.f32();
  const double s = 1000.0 * double(t);
  for (int64_t k = 0; k < half; ++k) {
    const double f = std::exp(-std::log(10000.0) * double(k) / double(half));
    e[k] = float(std::cos(s * f));
    e[half + k] = float(std::sin(s * f));
  }
}

void CpuBackend::concat_rows(std::span<const Tensor> parts, const Tensor& out) {
  int64_t row = 0;
  for (const Tensor& p : parts) {
    FRESCO_ASSERT(p.row_numel() == out.row_numel(), "concat_rows: width " + p.describe());
    std::memcpy(out.rows(row, p.dim(0)).raw(), p.raw(), p.bytes());
    row += p.dim(0);
  }
  FRESCO_ASSERT(row == out.dim(0), "concat_rows: parts do not fill " + out.describe());
}

void CpuBackend::split_rows(const Tensor& in, std::span<const Tensor> parts) {
  int64_t row = 0;
  for (const Tensor& p : parts) {
    FRESCO_ASSERT(p.row_numel() == in.row_numel(), "split_rows: width " + p.describe());
    std::memcpy(p.raw(), in.rows(row, p.dim(0)).raw(), p.bytes());
    row += p.dim(0);
  }
  FRESCO_ASSERT(row == in.dim(0), "split_rows: parts do not cover " + in.describe());
}

void CpuBackend::copy_columns(const Tensor& src, int64_t col0, const Tensor& dst) {
  // src: [L, C]; dst: [L, n] (any shape with L rows); dst = src[:, col0:col0+n]
  const int64_t C = src.row_numel(), n = dst.row_numel(), L = src.dim(0);
  FRESCO_ASSERT(dst.dim(0) == L && col0 >= 0 && col0 + n <= C, "copy_columns: ranges");
  const float* in = src.f32();
  float* out = dst.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    std::memcpy(out + l * n, in + l * C + col0, size_t(n) * sizeof(float));
}

void CpuBackend::paste_columns(const Tensor& src, const Tensor& dst, int64_t col0) {
  // src: [L, n]; dst: [L, C]; dst[:, col0:col0+n] = src
  const int64_t C = dst.row_numel(), n = src.row_numel(), L = src.dim(0);
  FRESCO_ASSERT(dst.dim(0) == L && col0 >= 0 && col0 + n <= C, "paste_columns: ranges");
  const float* in = src.f32();
  float* out = dst.f32();
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    std::memcpy(out + l * C + col0, in + l * n, size_t(n) * sizeof(float));
}

// Visits every element of a latent [c, h, w] with its index in the packed tokens
// [(h/2)(w/2), 4c]: (ch, 2i+pi, 2j+pj) <-> (token i*w/2 + j, channel 4ch + 2pi + pj).
template <typename Visit>
void for_each_packed_element(const Tensor& latent, const Tensor& tokens, const char* op,
                             Visit visit) {
  FRESCO_ASSERT(latent.rank() == 3, std::string(op) + ": expected latent [c, h, w]");
  const int64_t c = latent.dim(0), h = latent.dim(1), w = latent.dim(2), gw = w / 2;
  FRESCO_ASSERT(h % 2 == 0 && w % 2 == 0 && tokens.numel() == latent.numel() &&
                    tokens.dim(-1) == 4 * c,
                std::string(op) + ": " + latent.describe() + " vs tokens " + tokens.describe());
#pragma omp parallel for
  for (int64_t i = 0; i < h / 2; ++i)
    for (int64_t j = 0; j < gw; ++j)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t pi = 0; pi < 2; ++pi)
          for (int64_t pj = 0; pj < 2; ++pj)
            visit((i * gw + j) * 4 * c + ch * 4 + pi * 2 + pj,
                  (ch * h + 2 * i + pi) * w + 2 * j + pj);
}

void CpuBackend::pack_latent(const Tensor& latent, const Tensor& tokens) {
  const float* in = latent.f32();
  float* out = tokens.f32();
  for_each_packed_element(latent, tokens, "pack_latent",
                          [&](int64_t tok, int64_t lat) { out[tok] = in[lat]; });
}

void CpuBackend::unpack_latent(const Tensor& tokens, const Tensor& latent) {
  const float* in = tokens.f32();
  float* out = latent.f32();
  for_each_packed_element(latent, tokens, "unpack_latent",
                          [&](int64_t tok, int64_t lat) { out[lat] = in[tok]; });
}

void CpuBackend::convert(const Tensor& x, const Tensor& y) {
  // x, y: same element count; one of them f32
  FRESCO_ASSERT(x.numel() == y.numel() && (x.dtype() == DType::f32 || y.dtype() == DType::f32),
                "convert: " + x.describe() + " -> " + y.describe());
  const size_t n = size_t(x.numel());
  if (x.dtype() == y.dtype()) {
    std::memmove(y.raw(), x.raw(), x.bytes());
  } else if (x.dtype() == DType::f32) {
    if (y.dtype() == DType::bf16) float_to_bf16(x.f32(), y.data<uint16_t>(), n);
    else float_to_f16(x.f32(), y.data<uint16_t>(), n);
  } else {
    if (x.dtype() == DType::bf16) bf16_to_float(x.data<uint16_t>(), y.f32(), n);
    else f16_to_float(x.data<uint16_t>(), y.f32(), n);
  }
}

}  // namespace fresco
