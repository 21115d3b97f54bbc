#include "src/backend/cpu_backend.hpp"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

#include "src/backend/op_checks.hpp"
#include "src/core/error.hpp"

namespace fresco {

using cpu::Rows;

namespace {

bool is_compute_dtype(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }

using op_checks::matrix;
using op_checks::numel;
using op_checks::same_shape;

float gelu_tanh_of(float v) {
  const float k = float(std::sqrt(2.0 / std::numbers::pi));
  return 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
}

float silu_of(float v) { return v / (1.0f + std::exp(-v)); }
float quick_gelu_of(float v) { return v / (1.0f + std::exp(-1.702f * v)); }
float gelu_erf_of(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }

// Mean and 1/sqrt(variance + eps) of a row, in double so the reference is not the weak link.
struct RowStats {
  double mean, inv_std;
};
RowStats row_stats(const float* r, int64_t n, float eps) {
  double mean = 0.0;
  for (int64_t c = 0; c < n; ++c) mean += r[c];
  mean /= double(n);
  double var = 0.0;
  for (int64_t c = 0; c < n; ++c) var += (r[c] - mean) * (r[c] - mean);
  var /= double(n);
  return {mean, 1.0 / std::sqrt(var + eps)};
}

// 1/sqrt(mean(v^2) + eps) of one head (RMSNorm).
float inv_rms(const float* v, int64_t n, float eps) {
  double ms = 0.0;
  for (int64_t d = 0; d < n; ++d) ms += double(v[d]) * v[d];
  return float(1.0 / std::sqrt(ms / double(n) + eps));
}

// Runs f(r) for every row r of `rows`, threaded over rows.
template <typename F>
void for_rows(const Rows& rows, F f) {
#pragma omp parallel for
  for (int64_t r = 0; r < rows.rows; ++r) f(r);
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

bool CpuBackend::supports(const OpDesc& d) const {
  if (d.op == Op::count || d.accum != DType::f32) return false;
  if (d.op == Op::linear_fp8 ? d.weight != DType::e4m3 : !is_compute_dtype(d.weight)) return false;
  if (d.epilogue != Epilogue::none && d.op != Op::linear && d.op != Op::linear_fp8) return false;
  switch (d.op) {
    case Op::copy:  // conversion among the compute dtypes, or a byte copy of any dtype
      return (is_compute_dtype(d.in) && is_compute_dtype(d.out)) || d.in == d.out;
    case Op::count_nonfinite:
      return (is_compute_dtype(d.in) || d.in == DType::f64) && d.out == DType::i64;
    case Op::group_sums: return is_compute_dtype(d.in) && d.out == DType::f64;
    case Op::change_sums: return is_compute_dtype(d.in) && d.out == DType::f64;
    case Op::quantize_rows: return is_compute_dtype(d.in) && d.out == DType::e4m3;
    case Op::dequantize_rows: return d.in == DType::e4m3 && is_compute_dtype(d.out);
    case Op::linear_fp8: return d.in == DType::e4m3 && is_compute_dtype(d.out);
    case Op::norm_modulate_fp8: return is_compute_dtype(d.in) && d.out == DType::e4m3;
    case Op::gather_rows: return d.in == DType::i64 && is_compute_dtype(d.out);
    case Op::attention_fp8: return d.in == d.out && (d.in == DType::bf16 || d.in == DType::f16);
    default: return is_compute_dtype(d.in) && is_compute_dtype(d.out);
  }
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  // Same dim(0) and row_numel; either may be strided; f32/bf16/f16 converted, else same dtype.
  FRESCO_ASSERT(src.device() == Device::cpu && dst.device() == Device::cpu,
                "copy on the CPU backend: " + src.describe() + " -> " + dst.describe());
  FRESCO_ASSERT(src.rank() >= 1 && dst.rank() >= 1 && src.dim(0) == dst.dim(0) &&
                    src.row_numel() == dst.row_numel(),
                "copy: " + src.describe() + " -> " + dst.describe() +
                    " (rows and elements per row must match)");
  FRESCO_ASSERT(src.dtype() == dst.dtype() ||
                    (is_compute_dtype(src.dtype()) && is_compute_dtype(dst.dtype())),
                "copy: no conversion " + src.describe() + " -> " + dst.describe());
  const int64_t rows = src.dim(0), width = src.row_numel();
  if (src.contiguous() && dst.contiguous())  // one dense run
    cpu::convert_rows(src.raw(), src.dtype(), rows * width, dst.raw(), dst.dtype(), rows * width, 1,
                      rows * width);
  else
    cpu::convert_rows(src.raw(), src.dtype(), src.row_stride(), dst.raw(), dst.dtype(),
                      dst.row_stride(), rows, width);
}

// ---- transformer ops --------------------------------------------------------------------------

void CpuBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
                        Epilogue epilogue, const Tensor* gate) {
  // x: [M, K] (a vector is one row); weight: [N, K] (PyTorch layout); bias, gate: [N]; y: [M, N]
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const int64_t K = in.width, N = weight.rank() == 2 ? weight.dim(0) : -1;
  FRESCO_ASSERT(N >= 0 && weight.dim(1) == K,
                "linear: weight " + weight.describe() + " does not match input " + x.describe());
  FRESCO_ASSERT(!bias || bias->numel() == N, "linear: bias " + bias->describe());
  FRESCO_ASSERT((epilogue == Epilogue::gated_residual) == (gate != nullptr),
                std::string("linear: a gate goes with the gated_residual epilogue, got ") +
                    epilogue_name(epilogue));
  FRESCO_ASSERT(!gate || gate->numel() == N, "linear: gate " + gate->describe());
  const float* w = cpu::dense(weight, scratch_, cpu::kWeight);  // bf16/f16 weights widened here
  product_epilogue(in, w, N, bias, nullptr, nullptr, epilogue, gate, y);
}

void CpuBackend::product_epilogue(const Rows& in, const float* w, int64_t N, const Tensor* bias,
                                  const float* row_scale, const float* col_scale, Epilogue epilogue,
                                  const Tensor* gate, const Tensor& y) {
  const int64_t M = in.rows, K = in.width;
  const float* b = bias ? cpu::dense(*bias, scratch_, cpu::kBias) : nullptr;
  const float* g = gate ? cpu::dense(*gate, scratch_, cpu::kVec0) : nullptr;
  const bool accumulate = epilogue == Epilogue::gated_residual;
  const Rows out = accumulate ? cpu::update(y, scratch_, cpu::kOut) : cpu::write(y, scratch_, cpu::kOut);
  FRESCO_ASSERT(out.rows == M && out.width == N, "linear: output " + y.describe() + " for " +
                                                     std::to_string(M) + " rows of " + std::to_string(K));
  if (M == 0 || N == 0) return;

  // prod = x W^T + b, in f32: in y itself unless the epilogue adds it to y. With scales (FP8):
  // prod = row_scale[m] col_scale[n] (x W^T) + b, the product formed first.
  const bool scaled = row_scale != nullptr;
  const Rows prod = accumulate ? Rows{scratch_.get(cpu::kTmp, size_t(M * N)), M, N, N} : out;
#pragma omp parallel for
  for (int64_t m = 0; m < M; ++m) {
    if (b && !scaled) std::memcpy(prod.row(m), b, size_t(N) * sizeof(float));
    else std::fill_n(prod.row(m), N, 0.0f);
  }
  if (K > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, in.data,
                int(in.ld), w, int(K), 1.0f, prod.data, int(prod.ld));
  if (scaled)
    for_rows(prod, [&](int64_t m) {
      float* r = prod.row(m);
      for (int64_t n = 0; n < N; ++n) r[n] = row_scale[m] * col_scale[n] * r[n] + (b ? b[n] : 0.0f);
    });

  switch (epilogue) {
    case Epilogue::none: break;
    case Epilogue::gelu_tanh:
      for_rows(out, [&](int64_t m) {
        float* r = out.row(m);
        for (int64_t n = 0; n < N; ++n) r[n] = gelu_tanh_of(r[n]);
      });
      break;
    case Epilogue::gated_residual:
      for_rows(out, [&](int64_t m) {
        float* r = out.row(m);
        const float* p = prod.row(m);
        for (int64_t n = 0; n < N; ++n) r[n] += g[n] * p[n];
      });
      break;
  }
  cpu::store(out, y);
}

void CpuBackend::layer_norm(const Tensor& x, float eps, const Tensor& y) {
  // x, y: [L, C]; no affine
  same_shape(x, y, "layer_norm");
  matrix(x, "layer_norm");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  const int64_t C = in.width;
  for_rows(out, [&](int64_t l) {
    const float* r = in.row(l);
    float* o = out.row(l);
    const RowStats s = row_stats(r, C, eps);
    for (int64_t c = 0; c < C; ++c) o[c] = float((r[c] - s.mean) * s.inv_std);
  });
  cpu::store(out, y);
}

void CpuBackend::layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                                   const Tensor& y) {
  // x, y: [L, C]; weight, bias: [C]
  same_shape(x, y, "layer_norm_affine");
  matrix(x, "layer_norm_affine");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const int64_t C = in.width;
  numel(weight, C, "layer_norm_affine", "weight");
  numel(bias, C, "layer_norm_affine", "bias");
  const float* w = cpu::dense(weight, scratch_, cpu::kVec0);
  const float* b = cpu::dense(bias, scratch_, cpu::kVec1);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t l) {
    const float* r = in.row(l);
    float* o = out.row(l);
    const RowStats st = row_stats(r, C, eps);
    for (int64_t c = 0; c < C; ++c) o[c] = w[c] * float((r[c] - st.mean) * st.inv_std) + b[c];
  });
  cpu::store(out, y);
}

void CpuBackend::modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                          const Tensor& y) {
  modulate_rows(x, shift, scale, /*normalize=*/false, 0.0f, y, "modulate");
}

void CpuBackend::norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                               float eps, const Tensor& y) {
  // layer_norm then modulate, the normalised value kept in f32 (same arithmetic as the two
  // ops in f32, one rounding at the store).
  modulate_rows(x, shift, scale, /*normalize=*/true, eps, y, "norm_modulate");
}

void CpuBackend::modulate_rows(const Tensor& x, const Tensor& shift, const Tensor& scale,
                               bool normalize, float eps, const Tensor& y, const char* op) {
  // x, y: [L, C]; shift, scale: [C]
  same_shape(x, y, op);
  matrix(x, op);
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const int64_t C = in.width;
  numel(shift, C, op, "shift");
  numel(scale, C, op, "scale");
  const float* sh = cpu::dense(shift, scratch_, cpu::kVec0);
  const float* sc = cpu::dense(scale, scratch_, cpu::kVec1);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  modulated(in, sh, sc, normalize, eps, out);
  cpu::store(out, y);
}

void CpuBackend::modulated(const Rows& in, const float* sh, const float* sc, bool normalize, float eps,
                           const Rows& out) {
  const int64_t C = in.width;
  for_rows(out, [&](int64_t l) {
    const float* r = in.row(l);
    float* o = out.row(l);
    if (normalize) {
      const RowStats s = row_stats(r, C, eps);
      for (int64_t c = 0; c < C; ++c) o[c] = (1.0f + sc[c]) * float((r[c] - s.mean) * s.inv_std) + sh[c];
    } else {
      for (int64_t c = 0; c < C; ++c) o[c] = (1.0f + sc[c]) * r[c] + sh[c];
    }
  });
}

void CpuBackend::rms_norm_heads(const Tensor& x, const Tensor& scale, float eps,
                                const Tensor& y) {
  // x, y: [L, H, D] (any number of heads per row); scale: [D]
  same_shape(x, y, "rms_norm_heads");
  const int64_t D = x.dim(-1);
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  FRESCO_ASSERT(x.rank() >= 2 && D > 0 && in.width % D == 0, "rms_norm_heads: x " + x.describe());
  numel(scale, D, "rms_norm_heads", "scale");
  const float* s = cpu::dense(scale, scratch_, cpu::kVec0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  const int64_t H = in.width / D;
  for_rows(out, [&](int64_t l) {
    for (int64_t h = 0; h < H; ++h) {
      const float* v = in.row(l) + h * D;
      float* o = out.row(l) + h * D;
      const float inv = inv_rms(v, D, eps);
      for (int64_t d = 0; d < D; ++d) o[d] = v[d] * inv * s[d];
    }
  });
  cpu::store(out, y);
}

void CpuBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) {
  // x, y: [L, H, D]; cos, sin: [L, D/2] (one angle per token and channel pair)
  op_checks::rope(x, cos, sin, y, "rope");
  const int64_t H = x.dim(1), D = x.dim(2), P = D / 2;
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const float* c = cpu::dense(cos, scratch_, cpu::kVec0);
  const float* s = cpu::dense(sin, scratch_, cpu::kVec1);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t l) {
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < P; ++p) {
        const float* v = in.row(l) + h * D + 2 * p;
        float* o = out.row(l) + h * D + 2 * p;
        const float x0 = v[0], x1 = v[1], cp = c[l * P + p], sp = s[l * P + p];
        o[0] = cp * x0 - sp * x1;
        o[1] = sp * x0 + cp * x1;
      }
  });
  cpu::store(out, y);
}

void CpuBackend::rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                               const Tensor& sin, const Tensor& y) {
  // rms_norm_heads then rope, the normalised pair kept in f32 (same arithmetic as the two ops
  // in f32, one rounding at the store). x, y: [L, H, D]; scale: [D]; cos, sin: [L, D/2]
  op_checks::rms_norm_rope(x, scale, cos, sin, y);
  const int64_t H = x.dim(1), D = x.dim(2), P = D / 2;
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const float* sc = cpu::dense(scale, scratch_, cpu::kVec0);
  const float* c = cpu::dense(cos, scratch_, cpu::kVec1);
  const float* s = cpu::dense(sin, scratch_, cpu::kVec2);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t l) {
    for (int64_t h = 0; h < H; ++h) {
      const float* v = in.row(l) + h * D;
      float* o = out.row(l) + h * D;
      const float inv = inv_rms(v, D, eps);
      for (int64_t p = 0; p < P; ++p) {
        const float x0 = v[2 * p] * inv * sc[2 * p], x1 = v[2 * p + 1] * inv * sc[2 * p + 1];
        const float cp = c[l * P + p], sp = s[l * P + p];
        o[2 * p] = cp * x0 - sp * x1;
        o[2 * p + 1] = sp * x0 + cp * x1;
      }
    }
  });
  cpu::store(out, y);
}

void CpuBackend::gelu_tanh(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "gelu_tanh");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = gelu_tanh_of(in.row(r)[i]);
  });
  cpu::store(out, y);
}

void CpuBackend::silu(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "silu");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = silu_of(in.row(r)[i]);
  });
  cpu::store(out, y);
}

void CpuBackend::quick_gelu(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "quick_gelu");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = quick_gelu_of(in.row(r)[i]);
  });
  cpu::store(out, y);
}

void CpuBackend::gelu_erf(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "gelu_erf");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = gelu_erf_of(in.row(r)[i]);
  });
  cpu::store(out, y);
}

void CpuBackend::gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) {
  // x: [L, C] updated in place; gate: [C]; y: [L, C]
  same_shape(x, y, "gated_residual");
  matrix(x, "gated_residual");
  const Rows in = cpu::read(y, scratch_, cpu::kIn0);
  numel(gate, in.width, "gated_residual", "gate");
  const float* g = cpu::dense(gate, scratch_, cpu::kVec0);
  const Rows acc = cpu::update(x, scratch_, cpu::kOut);
  for_rows(acc, [&](int64_t l) {
    for (int64_t c = 0; c < acc.width; ++c) acc.row(l)[c] += g[c] * in.row(l)[c];
  });
  cpu::store(acc, x);
}

template <typename F>
void CpuBackend::binary(const Tensor& a, const Tensor& b, const Tensor& y, const char* op, F f) {
  // a, b, y: one shape, any float dtypes and row strides; y may be a or b (both are staged, or
  // read element by element before the same element is written)
  op_checks::binary(a, b, y, op);
  const Rows pa = cpu::read(a, scratch_, cpu::kIn0);
  const Rows pb = cpu::read(b, scratch_, cpu::kIn1);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = f(pa.row(r)[i], pb.row(r)[i]);
  });
  cpu::store(out, y);
}

void CpuBackend::add(const Tensor& a, const Tensor& b, const Tensor& y) {
  binary(a, b, y, "add", [](float u, float v) { return u + v; });
}

void CpuBackend::subtract(const Tensor& a, const Tensor& b, const Tensor& y) {
  binary(a, b, y, "subtract", [](float u, float v) { return u - v; });
}

void CpuBackend::multiply(const Tensor& a, const Tensor& b, const Tensor& y) {
  binary(a, b, y, "multiply", [](float u, float v) { return u * v; });
}

void CpuBackend::gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) {
  // table: [V, C] dense; ids: [L] i64; y: [L, C], any row stride
  op_checks::gather_rows(table, ids, y);
  FRESCO_ASSERT(ids.device() == Device::cpu && table.device() == Device::cpu,
                "gather_rows on the CPU backend: table " + table.describe() + ", ids " + ids.describe());
  const int64_t V = table.dim(0), C = table.dim(1);
  const int64_t* id = ids.data<int64_t>();
  for (int64_t l = 0; l < ids.numel(); ++l)
    FRESCO_ASSERT(id[l] >= 0 && id[l] < V, "gather_rows: id " + std::to_string(id[l]) + " at " + std::to_string(l) +
                                               " is outside the table's " + std::to_string(V) + " rows");
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  const size_t es = dtype_size(table.dtype());
  for_rows(out, [&](int64_t l) {
    cpu::convert_rows(static_cast<const char*>(table.raw()) + size_t(id[l] * C) * es, table.dtype(), C, out.row(l),
                      DType::f32, C, 1, C);
  });
  cpu::store(out, y);
}

void CpuBackend::affine(const Tensor& x, float a, float b, const Tensor& y) {
  same_shape(x, y, "affine");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  for_rows(out, [&](int64_t r) {
    for (int64_t i = 0; i < out.width; ++i) out.row(r)[i] = a * in.row(r)[i] + b;
  });
  cpu::store(out, y);
}

void CpuBackend::axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) {
  // y += alpha[0] * x; alpha: [1] on this device
  same_shape(x, y, "axpy");
  const float a = float(cpu::scalar(alpha));
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows acc = cpu::update(y, scratch_, cpu::kOut);
  for_rows(acc, [&](int64_t r) {
    for (int64_t i = 0; i < acc.width; ++i) acc.row(r)[i] += a * in.row(r)[i];
  });
  cpu::store(acc, y);
}

void CpuBackend::timestep_embedding(const Tensor& t, const Tensor& out) {
  // out: [2 * half] = [cos(1000 t f_k)..., sin(1000 t f_k)...], f_k = 10000^(-k/half); t: [1]
  const int64_t half = out.numel() / 2;
  FRESCO_ASSERT(out.numel() == 2 * half && out.contiguous(),
                "timestep_embedding: output " + out.describe());
  const double s = 1000.0 * cpu::scalar(t);
  const Rows staged = cpu::write(out, scratch_, cpu::kOut);
  float* e = staged.data;  // contiguous: element i at e[i]
  for (int64_t k = 0; k < half; ++k) {
    const double f = std::exp(-std::log(10000.0) * double(k) / double(half));
    e[k] = float(std::cos(s * f));
    e[half + k] = float(std::sin(s * f));
  }
  cpu::store(staged, out);
}

// Visits every element of a latent [c, h, w] with its place in the packed tokens
// [(h/2)(w/2), 4c]: (ch, 2i+pi, 2j+pj) <-> (token i*w/2 + j, channel 4ch + 2pi + pj).
// visit(token, token channel, latent channel, position h*w within the latent channel).
template <typename Visit>
void for_each_packed_element(const Tensor& latent, const Tensor& tokens, const char* op,
                             Visit visit) {
  FRESCO_ASSERT(latent.rank() == 3 && tokens.rank() == 2,
                std::string(op) + ": expected latent [c, h, w] and tokens [n, 4c]");
  const int64_t c = latent.dim(0), h = latent.dim(1), w = latent.dim(2), gw = w / 2;
  FRESCO_ASSERT(h % 2 == 0 && w % 2 == 0 && tokens.dim(0) == (h / 2) * gw && tokens.dim(1) == 4 * c,
                std::string(op) + ": " + latent.describe() + " vs tokens " + tokens.describe());
#pragma omp parallel for
  for (int64_t i = 0; i < h / 2; ++i)
    for (int64_t j = 0; j < gw; ++j)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t pi = 0; pi < 2; ++pi)
          for (int64_t pj = 0; pj < 2; ++pj)
            visit(i * gw + j, ch * 4 + pi * 2 + pj, ch, (2 * i + pi) * w + 2 * j + pj);
}

void CpuBackend::pack_latent(const Tensor& latent, const Tensor& tokens) {
  const Rows in = cpu::read(latent, scratch_, cpu::kIn0);
  const Rows out = cpu::write(tokens, scratch_, cpu::kOut);
  for_each_packed_element(latent, tokens, "pack_latent",
                          [&](int64_t tok, int64_t tc, int64_t ch, int64_t pos) {
                            out.row(tok)[tc] = in.row(ch)[pos];
                          });
  cpu::store(out, tokens);
}

void CpuBackend::unpack_latent(const Tensor& tokens, const Tensor& latent) {
  const Rows in = cpu::read(tokens, scratch_, cpu::kIn0);
  const Rows out = cpu::write(latent, scratch_, cpu::kOut);
  for_each_packed_element(latent, tokens, "unpack_latent",
                          [&](int64_t tok, int64_t tc, int64_t ch, int64_t pos) {
                            out.row(ch)[pos] = in.row(tok)[tc];
                          });
  cpu::store(out, latent);
}

namespace {
// Number of elements of x's rows (any stride) for which is_bad(element) holds.
template <typename T, typename IsBad>
int64_t count_where(const Tensor& x, IsBad is_bad) {
  const cpu::Matrix m = cpu::matrix_of(x);
  const T* p = static_cast<const T*>(x.raw());
  int64_t n = 0;
#pragma omp parallel for reduction(+ : n)
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.width; ++c) n += is_bad(p[r * m.ld + c]) ? 1 : 0;
  return n;
}
}  // namespace

void CpuBackend::count_nonfinite(const Tensor& x, const Tensor& count) {
  // count: [1] i64 = number of NaN and infinite elements of x (any float dtype)
  FRESCO_ASSERT(count.dtype() == DType::i64 && count.numel() == 1 && count.device() == Device::cpu,
                "count_nonfinite: count " + count.describe() + " should be an i64 [1]");
  int64_t n = 0;
  if (x.dtype() == DType::f64) {
    n = count_where<double>(x, [](double v) { return !std::isfinite(v); });
  } else {
    cpu::with_float_dtype(x.dtype(), [&](auto e) {
      using E = decltype(e);
      n = count_where<typename E::T>(x, [](typename E::T v) { return !std::isfinite(E::load(v)); });
    });
  }
  *count.data<int64_t>() = n;
}

void CpuBackend::change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) {
  // a, b: [L, C] of one float dtype, any row stride; sums: [2] f64 = (sum |a - b|, sum |b|).
  // The difference is formed in f32 from the stored values, the sums run in double. The rows
  // are cut into kChunks fixed ranges summed in parallel, then added in chunk order: the same
  // bits whatever the number of threads (an OpenMP reduction adds in arrival order).
  op_checks::change_sums(a, b, sums);
  FRESCO_ASSERT(sums.device() == Device::cpu, "change_sums: sums " + sums.describe() + " on the CPU backend");
  const Rows pa = cpu::read(a, scratch_, cpu::kIn0);
  const Rows pb = cpu::read(b, scratch_, cpu::kIn1);
  constexpr int64_t kChunks = 64;
  std::array<double, kChunks> diff{}, ref{};
  const int64_t per = (pa.rows + kChunks - 1) / kChunks;
#pragma omp parallel for if (pa.rows * pa.width > (1 << 15))
  for (int64_t k = 0; k < kChunks; ++k) {
    double dk = 0, sk = 0;
    for (int64_t r = k * per; r < std::min(pa.rows, (k + 1) * per); ++r)
      for (int64_t i = 0; i < pa.width; ++i) {
        dk += std::fabs(pa.row(r)[i] - pb.row(r)[i]);  // the difference in f32
        sk += std::fabs(pb.row(r)[i]);
      }
    diff[size_t(k)] = dk;
    ref[size_t(k)] = sk;
  }
  double d = 0, s = 0;
  for (int64_t k = 0; k < kChunks; ++k) {
    d += diff[size_t(k)];
    s += ref[size_t(k)];
  }
  sums.data<double>()[0] = d;
  sums.data<double>()[1] = s;
}

}  // namespace fresco
