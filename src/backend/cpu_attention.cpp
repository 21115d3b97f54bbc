// CPU reference attention with the log-sum-exp of every query row.
//
// For each head h: S = q_h k_h^T / sqrt(D) (BLAS), P = softmax(S) row by row, o_h = P v_h
// (BLAS); lse[l, h] = max_j S[l, j] + log(sum_j exp(S[l, j] - max)). Later issues merge the
// partial outputs of key/value blocks with lse (Ring attention), so it is part of the op.
// Queries are processed in blocks so the score matrix stays small for long sequences.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/backend/cpu_backend.hpp"
#include "src/core/error.hpp"

namespace fresco {

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                           const Tensor& lse) {
  // q, o: [Lq, H, D]; k, v: [Lk, H, D]; lse: [Lq, H] (optional)
  FRESCO_ASSERT(q.rank() == 3 && k.rank() == 3 && v.shape() == k.shape() && o.shape() == q.shape(),
                "attention: q " + q.describe() + ", k " + k.describe() + ", v " + v.describe());
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2), Lk = k.dim(0);
  FRESCO_ASSERT(k.dim(1) == H && k.dim(2) == D, "attention: heads of k differ from q");
  FRESCO_ASSERT(!lse.defined() || lse.numel() == Lq * H, "attention: lse " + lse.describe());
  const int64_t ld = H * D;  // distance between consecutive tokens of one head
  const float scale = 1.0f / std::sqrt(float(D));
  const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32();
  float* po = o.f32();
  float* plse = lse.defined() ? lse.f32() : nullptr;

  constexpr int64_t kQueryBlock = 256;
  std::vector<float> scores(size_t(std::min(Lq, kQueryBlock) * Lk));  // [block, Lk]
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t q0 = 0; q0 < Lq; q0 += kQueryBlock) {
      const int64_t nq = std::min(kQueryBlock, Lq - q0);
      float* S = scores.data();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(Lk), int(D), scale,
                  pq + q0 * ld + h * D, int(ld), pk + h * D, int(ld), 0.0f, S, int(Lk));
#pragma omp parallel for
      for (int64_t i = 0; i < nq; ++i) {
        float* row = S + i * Lk;
        const float mx = *std::max_element(row, row + Lk);
        double sum = 0.0;
        for (int64_t j = 0; j < Lk; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < Lk; ++j) row[j] *= inv;
        if (plse) plse[(q0 + i) * H + h] = mx + float(std::log(sum));
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(D), int(Lk), 1.0f, S,
                  int(Lk), pv + h * D, int(ld), 0.0f, po + q0 * ld + h * D, int(ld));
    }
  }
}

void CpuBackend::attention_merge(const Tensor& o, const Tensor& lse, const Tensor& o_part,
                                 const Tensor& lse_part) {
  // o, o_part: [L, H, D]; lse, lse_part: [L, H]
  FRESCO_ASSERT(o.rank() == 3 && o.shape() == o_part.shape() && lse.shape() == lse_part.shape() &&
                    lse.numel() == o.dim(0) * o.dim(1),
                "attention_merge: o " + o.describe() + ", lse " + lse.describe());
  const int64_t rows = lse.numel(), D = o.dim(2);
  float *po = o.f32(), *pl = lse.f32();
  const float *pp = o_part.f32(), *plp = lse_part.f32();
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const float a = pl[r], b = plp[r];
    const float mx = std::max(a, b);
    const float merged = mx + std::log(std::exp(a - mx) + std::exp(b - mx));
    const float wa = std::exp(a - merged), wb = std::exp(b - merged);
    for (int64_t d = 0; d < D; ++d) po[r * D + d] = wa * po[r * D + d] + wb * pp[r * D + d];
    pl[r] = merged;
  }
}

}  // namespace fresco
