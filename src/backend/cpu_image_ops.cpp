// CPU reference of the image ops of the VAE decoder: convolution (im2col + BLAS), GroupNorm
// in two phases (sums, then normalisation, so row shards can all-reduce their sums), nearest
// upsampling and 2-D transposition. Channel-major tensors [C, H, W] are staged as C rows of
// H*W elements (cpu_staging.hpp).
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "src/backend/cpu_backend.hpp"
#include "src/core/error.hpp"

namespace fresco {

using cpu::Rows;

void CpuBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
                        const Tensor& y) {
  // x: [Ci, H, W]; weight: [Co, Ci, k, k]; bias: [Co]; y: [Co, Ho, W], Ho = H + 2 pad_rows - (k-1)
  FRESCO_ASSERT(x.rank() == 3 && weight.rank() == 4 && y.rank() == 3, "conv2d: ranks");
  const int64_t Ci = x.dim(0), H = x.dim(1), W = x.dim(2), Co = weight.dim(0), k = weight.dim(2);
  const int64_t pad_cols = k / 2, Ho = H + 2 * pad_rows - (k - 1);
  FRESCO_ASSERT(weight.dim(1) == Ci && weight.dim(3) == k && k % 2 == 1 && bias.numel() == Co &&
                    y.dim(0) == Co && y.dim(1) == Ho && y.dim(2) == W,
                "conv2d: x " + x.describe() + ", weight " + weight.describe() + ", y " + y.describe());
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const float* w = cpu::dense(weight, scratch_, cpu::kWeight);  // [Co, Ci*k*k]
  const float* pb = cpu::dense(bias, scratch_, cpu::kBias);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
#pragma omp parallel for
  for (int64_t o = 0; o < Co; ++o) std::fill_n(out.row(o), Ho * W, pb[o]);
  const int64_t K = Ci * k * k;
  if (Ho * W == 0 || K == 0) return cpu::store(out, y);

  // Output rows in chunks, so the column matrix stays bounded (about 16 M floats) for any image.
  // cols: [K, rows * W]; entry (c, a, b; i, j) = x[c, i+a-pad_rows, j+b-pad_cols], 0 outside.
  const int64_t chunk = std::clamp<int64_t>((int64_t(1) << 24) / (K * W), 1, Ho);
  float* cols = scratch_.get(cpu::kIm2col, size_t(K * chunk * W));
  for (int64_t i0 = 0; i0 < Ho; i0 += chunk) {
    const int64_t ni = std::min(chunk, Ho - i0), N = ni * W;
#pragma omp parallel for
    for (int64_t r = 0; r < K; ++r) {
      const int64_t c = r / (k * k), a = (r / k) % k, b = r % k;
      float* dst = cols + r * N;
      for (int64_t i = 0; i < ni; ++i) {
        const int64_t si = i0 + i + a - pad_rows;
        for (int64_t j = 0; j < W; ++j) {
          const int64_t sj = j + b - pad_cols;
          dst[i * W + j] = (si >= 0 && si < H && sj >= 0 && sj < W) ? in.row(c)[si * W + sj] : 0.0f;
        }
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(Co), int(N), int(K), 1.0f, w,
                int(K), cols, int(N), 1.0f, out.data + i0 * W, int(out.ld));
  }
  cpu::store(out, y);
}

void CpuBackend::group_sums(const Tensor& x, int groups, const Tensor& sums) {
  // x: [C, H, W]; sums: [groups, 2] f64 = per group (sum, sum of squares), in double
  FRESCO_ASSERT(x.rank() >= 2 && groups > 0 && x.dim(0) % groups == 0,
                "group_sums: " + x.describe() + " in " + std::to_string(groups) + " groups");
  FRESCO_ASSERT(sums.dtype() == DType::f64 && sums.contiguous() && sums.numel() == 2 * groups &&
                    sums.device() == Device::cpu,
                "group_sums: sums " + sums.describe() + " should be f64 [groups, 2]");
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const int64_t cpg = x.dim(0) / groups;
  double* out = sums.data<double>();
#pragma omp parallel for
  for (int g = 0; g < groups; ++g) {
    double s = 0, sq = 0;
    for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
      const float* p = in.row(c);
      for (int64_t i = 0; i < in.width; ++i) {
        s += p[i];
        sq += double(p[i]) * p[i];
      }
    }
    out[2 * g] = s;
    out[2 * g + 1] = sq;
  }
}

void CpuBackend::group_norm(const Tensor& x, const Tensor& sums, double count, float eps,
                            const Tensor& weight, const Tensor& bias, const Tensor& y) {
  // x, y: [C, H, W]; weight, bias: [C]; sums: [groups, 2] f64 over `count` values per group
  FRESCO_ASSERT(x.shape() == y.shape() && x.rank() >= 2 && weight.numel() == x.dim(0) && bias.numel() == x.dim(0),
                "group_norm: x " + x.describe() + ", y " + y.describe() + ", weight " + weight.describe());
  const int64_t C = x.dim(0), groups = sums.numel() / 2;
  FRESCO_ASSERT(sums.dtype() == DType::f64 && sums.contiguous() && groups > 0 && C % groups == 0 &&
                    sums.device() == Device::cpu,
                "group_norm: sums " + sums.describe() + " for " + x.describe());
  const int64_t cpg = C / groups;
  const double* st = sums.data<double>();
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const float* w = cpu::dense(weight, scratch_, cpu::kWeight);
  const float* b = cpu::dense(bias, scratch_, cpu::kBias);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c) {
    const int64_t g = c / cpg;
    const double mean = st[2 * g] / count;
    const double var = std::max(st[2 * g + 1] / count - mean * mean, 0.0);
    const float scale = float(1.0 / std::sqrt(var + eps)) * w[c];
    const float shift = b[c] - float(mean) * scale;
    for (int64_t i = 0; i < in.width; ++i) out.row(c)[i] = in.row(c)[i] * scale + shift;
  }
  cpu::store(out, y);
}

void CpuBackend::upsample_nearest(const Tensor& x, const Tensor& y) {
  // x: [C, H, W] -> y: [C, 2H, 2W]
  FRESCO_ASSERT(x.rank() == 3 && y.rank() == 3 && y.dim(0) == x.dim(0) && y.dim(1) == 2 * x.dim(1) &&
                    y.dim(2) == 2 * x.dim(2),
                "upsample_nearest: x " + x.describe() + ", y " + y.describe());
  const int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2);
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j) out.row(c)[i * 2 * W + j] = in.row(c)[(i / 2) * W + j / 2];
  cpu::store(out, y);
}

void CpuBackend::transpose(const Tensor& x, const Tensor& y) {
  // x: [A, B] (B = row_numel: a token-major [L, C] or a channel-major [C, n]) -> y: [B, A]
  FRESCO_ASSERT(x.rank() >= 2 && y.rank() >= 2 && y.dim(0) == x.row_numel() &&
                    y.row_numel() == x.dim(0),
                "transpose: x " + x.describe() + ", y " + y.describe());
  const Rows in = cpu::read(x, scratch_, cpu::kIn0);
  const Rows out = cpu::write(y, scratch_, cpu::kOut);
  const int64_t A = in.rows, B = in.width;
#pragma omp parallel for
  for (int64_t b = 0; b < B; ++b)
    for (int64_t a = 0; a < A; ++a) out.row(b)[a] = in.row(a)[b];
  cpu::store(out, y);
}

}  // namespace fresco
