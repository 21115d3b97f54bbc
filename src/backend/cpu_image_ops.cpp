// CPU reference of the image ops of the VAE decoder: convolution (im2col + BLAS), GroupNorm
// in two phases (sums, then normalisation, so row shards can all-reduce their sums),
// nearest upsampling and 2-D transposition.
#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "src/backend/cpu_backend.hpp"
#include "src/core/error.hpp"

namespace fresco {

void CpuBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
                        const Tensor& y) {
  // x: [Ci, H, W]; weight: [Co, Ci, k, k]; bias: [Co]; y: [Co, Ho, W], Ho = H + 2 pad_rows - (k-1)
  FRESCO_ASSERT(x.rank() == 3 && weight.rank() == 4 && y.rank() == 3, "conv2d: ranks");
  const int64_t Ci = x.dim(0), H = x.dim(1), W = x.dim(2), Co = weight.dim(0), k = weight.dim(2);
  const int64_t pad_cols = k / 2, Ho = H + 2 * pad_rows - (k - 1);
  FRESCO_ASSERT(weight.dim(1) == Ci && weight.dim(3) == k && k % 2 == 1 && bias.numel() == Co &&
                    y.dim(0) == Co && y.dim(1) == Ho && y.dim(2) == W,
                "conv2d: x " + x.describe() + ", weight " + weight.describe() + ", y " + y.describe());
  // cols: [Ci*k*k, Ho*W], column (i, j) of input channel c and tap (a, b) = x[c, i+a-pad, j+b-pad]
  const float* in = x.f32();
  const int64_t K = Ci * k * k, N = Ho * W;
  std::vector<float> cols(size_t(K * N));
#pragma omp parallel for
  for (int64_t r = 0; r < K; ++r) {
    const int64_t c = r / (k * k), a = (r / k) % k, b = r % k;
    float* dst = cols.data() + r * N;
    for (int64_t i = 0; i < Ho; ++i) {
      const int64_t si = i + a - pad_rows;
      for (int64_t j = 0; j < W; ++j) {
        const int64_t sj = j + b - pad_cols;
        dst[i * W + j] = (si >= 0 && si < H && sj >= 0 && sj < W) ? in[(c * H + si) * W + sj] : 0.0f;
      }
    }
  }
  float* out = y.f32();
  const float* pb = bias.f32();
#pragma omp parallel for
  for (int64_t o = 0; o < Co; ++o)
    for (int64_t p = 0; p < N; ++p) out[o * N + p] = pb[o];
  if (N == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(Co), int(N), int(K), 1.0f,
              weight.f32(), int(K), cols.data(), int(N), 1.0f, out, int(N));
}

std::vector<double> CpuBackend::group_sums(const Tensor& x, int groups) {
  // x: [C, H, W]; returns [groups][sum, sum of squares]
  const int64_t C = x.dim(0), per_channel = x.numel() / C;
  FRESCO_ASSERT(C % groups == 0, "group_sums: channels not divisible by groups");
  const int64_t cpg = C / groups;
  const float* in = x.f32();
  std::vector<double> sums(size_t(2 * groups), 0.0);
#pragma omp parallel for
  for (int g = 0; g < groups; ++g) {
    double s = 0, sq = 0;
    const float* p = in + g * cpg * per_channel;
    for (int64_t i = 0; i < cpg * per_channel; ++i) {
      s += p[i];
      sq += double(p[i]) * p[i];
    }
    sums[size_t(2 * g)] = s;
    sums[size_t(2 * g + 1)] = sq;
  }
  return sums;
}

void CpuBackend::group_norm(const Tensor& x, const std::vector<double>& sums, double count,
                            float eps, const Tensor& weight, const Tensor& bias, const Tensor& y) {
  // x, y: [C, H, W]; weight, bias: [C]; sums: [groups][sum, sum of squares] over `count` values
  FRESCO_ASSERT(x.shape() == y.shape() && weight.numel() == x.dim(0) && bias.numel() == x.dim(0),
                "group_norm: x " + x.describe() + ", weight " + weight.describe());
  const int64_t C = x.dim(0), per_channel = x.numel() / C, groups = int64_t(sums.size() / 2);
  const int64_t cpg = C / groups;
  const float *in = x.f32(), *w = weight.f32(), *b = bias.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c) {
    const int64_t g = c / cpg;
    const double mean = sums[size_t(2 * g)] / count;
    const double var = std::max(sums[size_t(2 * g + 1)] / count - mean * mean, 0.0);
    const float scale = float(1.0 / std::sqrt(var + eps)) * w[c];
    const float shift = b[c] - float(mean) * scale;
    for (int64_t i = 0; i < per_channel; ++i) out[c * per_channel + i] = in[c * per_channel + i] * scale + shift;
  }
}

void CpuBackend::upsample_nearest(const Tensor& x, const Tensor& y) {
  // x: [C, H, W] -> y: [C, 2H, 2W]
  const int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2);
  FRESCO_ASSERT(y.shape() == (Shape{C, 2 * H, 2 * W}), "upsample_nearest: y " + y.describe());
  const float* in = x.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j) out[(c * 2 * H + i) * 2 * W + j] = in[(c * H + i / 2) * W + j / 2];
}

void CpuBackend::transpose(const Tensor& x, const Tensor& y) {
  // x: [A, B] (leading dims of x flattened into A) -> y: [B, A]
  const int64_t B = x.dim(-1), A = x.numel() / B;
  FRESCO_ASSERT(y.numel() == x.numel() && y.dim(0) == B, "transpose: y " + y.describe());
  const float* in = x.f32();
  float* out = y.f32();
#pragma omp parallel for
  for (int64_t b = 0; b < B; ++b)
    for (int64_t a = 0; a < A; ++a) out[b * A + a] = in[a * B + b];
}

}  // namespace fresco
