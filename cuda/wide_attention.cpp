#include "cuda/wide_attention.hpp"

#include <algorithm>

#include "src/core/error.hpp"

namespace fresco::cuda {
namespace {

cudaDataType_t lt_type(int dt) {
  switch (dt) {
    case kF32: return CUDA_R_32F;
    case kBF16: return CUDA_R_16BF;
    case kF16: return CUDA_R_16F;
    default: break;
  }
  FRESCO_ASSERT(false, "wide attention: no cuBLAS type for dtype " + std::to_string(dt));
}

// The view of head h's columns of a [L, H*D] matrix.
Mat head(const Mat& m, int64_t h, int64_t D) {
  return {static_cast<char*>(m.data) + size_t(h * D) * dt_size(m.dt), m.dt, m.rows, D, m.ld};
}

Mat rows_from(const Mat& m, int64_t r0, int64_t n) {
  return {static_cast<char*>(m.data) + size_t(r0 * m.ld) * dt_size(m.dt), m.dt, n, m.cols, m.ld};
}

}  // namespace

int64_t WideAttention::block_rows(int64_t Lq, int64_t Lk) {
  int64_t b = int64_t(kScoreBytes / (sizeof(float) * size_t(std::max<int64_t>(Lk, 1))));
  if (b >= 64) b -= b % 64;  // whole tiles for the products
  return std::clamp<int64_t>(b, 1, std::max<int64_t>(Lq, 1));
}

void WideAttention::run(LtGemm& gemm, Mat q, Mat k, Mat v, Mat o, int64_t H, int64_t D, float scale, float* lse,
                        cudaStream_t stream) {
  const int dt = q.dt;
  FRESCO_ASSERT(k.dt == dt && v.dt == dt && o.dt == dt, "wide attention: mixed dtypes");
  const int64_t Lq = q.rows, Lk = k.rows;
  if (Lq == 0) return;
  const size_t es = dt_size(dt);
  const int64_t Bq = block_rows(Lq, Lk);
  float* S = scores_.reserve_as<float>(size_t(Bq * Lk), stream);
  void* P = probs_.reserve(size_t(Bq * Lk) * es, stream);
  for (int64_t h = 0; h < H; ++h) {
    // k_h dense [Lk, D] (cuBLASLt's W operand), v_h^T [D, Lk] (the second product's W).
    Mat kh = head(k, h, D);
    if (kh.ld != D) {
      const Mat dense{keys_.reserve(size_t(Lk * D) * es, stream), dt, Lk, D, D};
      convert(kh, dense, stream);
      kh = dense;
    }
    const Mat vt{values_t_.reserve(size_t(D * Lk) * es, stream), dt, D, Lk, Lk};
    transpose(head(v, h, D), vt, stream);
    const Mat qh = head(q, h, D), oh = head(o, h, D);
    for (int64_t q0 = 0; q0 < Lq; q0 += Bq) {
      const int64_t nb = std::min(Bq, Lq - q0);
      const Mat qb = rows_from(qh, q0, nb), ob = rows_from(oh, q0, nb);
      const GemmProblem scores{qb.data, qb.ld, kh.data, S, Lk, nb, Lk, D, lt_type(dt), CUDA_R_32F,
                               LtEpilogue::none, nullptr};
      if (!gemm.run(scores, stream)) gemm_fallback(qb, kh, S, Lk, stream);
      const Mat pb{P, dt, nb, Lk, Lk};
      softmax_rows(S, Lk, Lk, scale, pb, lse ? lse + q0 * H + h : nullptr, H, stream);
      const GemmProblem out{P, Lk, vt.data, ob.data, ob.ld, nb, D, Lk, lt_type(dt), lt_type(dt),
                            LtEpilogue::none, nullptr};
      if (!gemm.run(out, stream)) {
        float* acc = acc_.reserve_as<float>(size_t(nb * D), stream);
        gemm_fallback(pb, vt, acc, D, stream);
        convert({acc, kF32, nb, D, D}, ob, stream);
      }
    }
  }
}

}  // namespace fresco::cuda
