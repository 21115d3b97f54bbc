// CPU reference attention with the log-sum-exp of every query row, and the text encoders'
// attention with a given scale, an additive bias and a causal mask (attention_bias).
//
// For each head h: S = scale q_h k_h^T (+ bias_h) (BLAS; scale 1/sqrt(D) for attention),
// P = softmax(S) row by row over the keys a query may see, o_h = P v_h (BLAS);
// lse[l, h] = max_j S[l, j] + log(sum_j exp(S[l, j] - max)). Ring attention merges the partial
// outputs of key/value blocks with lse (attention_merge), so it is part of the op.
// Queries are processed in blocks so the score matrix (a scratch buffer of the backend) stays
// small for long sequences. q, k, v and o are read and written with their row strides (q, k, v
// straight from the fused qkv rows, o into a concat buffer); a head's D columns start at h*D
// within a token's row.
//
// attention_fp8 is the exact emulation of FP8 attention (backend.hpp): q, k, v each rounded to
// e4m3 with one scale per tensor (held as the e4m3 values in f32, which is exact, and the scale
// apart), the scores' product of those values in f32, the probabilities rounded to e4m3 at 448
// before the product with v, and the descales applied to the f32 sums.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "src/backend/cpu_backend.hpp"
#include "src/backend/op_checks.hpp"
#include "src/core/error.hpp"
#include "src/core/float8.hpp"

namespace fresco {

using cpu::Rows;

namespace {

// t's values as e4m3 with one scale for the whole tensor: the dense f32 rows (in `slot`) hold
// e4m3(t / s) exactly, s = amax(t) / 448 (1 where t is all zeros), divided as quantize_rows does.
struct QuantizedRows {
  Rows rows;
  float scale;
};
QuantizedRows quantize_tensor(const Tensor& t, cpu::Scratch& scratch, cpu::Slot slot) {
  const cpu::Matrix m = cpu::matrix_of(t);
  float* buf = scratch.get(slot, size_t(m.rows * m.width));
  cpu::convert_rows(t.raw(), t.dtype(), m.ld, buf, DType::f32, m.width, m.rows, m.width);
  const size_t n = size_t(m.rows * m.width);
  float amax = 0;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(buf[i]));
  const float s = amax > 0 ? amax / kE4m3Max : 1.0f;
#pragma omp parallel for if (n > (1 << 15))
  for (int64_t i = 0; i < int64_t(n); ++i) buf[i] = e4m3_to_float(float_to_e4m3(buf[i] / s));
  return {{buf, m.rows, m.width, m.width}, s};
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                           const Tensor& lse) {
  // q, o: [Lq, H, D]; k, v: [Lk, H, D]; lse: [Lq, H] f32 (optional)
  op_checks::attention(q, k, v, o, lse);
  FRESCO_ASSERT(!lse.defined() || lse.device() == Device::cpu, "attention: lse " + lse.describe() + " is not on the CPU");
  attend(q, k, v, {1.0f / std::sqrt(float(q.dim(2)))}, o, lse.defined() ? lse.data<float>() : nullptr);
}

void CpuBackend::attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                               const Tensor& lse) {
  // q, o: [Lq, H, D]; k, v: [Lk, H, D] of a 16-bit compute dtype; lse: [Lq, H] f32 (optional)
  op_checks::attention(q, k, v, o, lse);
  op_checks::attention_fp8(q, k, v, o);
  FRESCO_ASSERT(!lse.defined() || lse.device() == Device::cpu, "attention_fp8: lse " + lse.describe() + " is not on the CPU");
  attend(q, k, v, {1.0f / std::sqrt(float(q.dim(2))), nullptr, false, true}, o,
         lse.defined() ? lse.data<float>() : nullptr);
}

void CpuBackend::attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                                float scale, const Tensor& o) {
  // q, o: [Lq, H, D]; k, v: [Lk, H, D]; bias: f32 [H, Lq, Lk] (optional)
  op_checks::attention_bias(q, k, v, bias, causal, o);
  FRESCO_ASSERT(!bias || bias->device() == Device::cpu, "attention_bias: bias " + bias->describe() + " is not on the CPU");
  attend(q, k, v, {scale, bias ? bias->data<float>() : nullptr, causal}, o, nullptr);
}

void CpuBackend::attend(const Tensor& q, const Tensor& k, const Tensor& v, const ScoreRule& rule, const Tensor& o,
                        float* plse) {
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2), Lk = k.dim(0);
  FRESCO_ASSERT(Lk > 0 || Lq == 0, "attention over no keys");
  if (Lq == 0) return;
  const float* bias = rule.bias;
  const bool causal = rule.causal;
  float scale = rule.scale;     // of q k^T
  float out_scale = 1.0f;       // of P v
  Rows Q, K, V;
  if (rule.fp8) {
    const QuantizedRows q8 = quantize_tensor(q, scratch_, cpu::kIn0), k8 = quantize_tensor(k, scratch_, cpu::kIn1),
                        v8 = quantize_tensor(v, scratch_, cpu::kIn2);
    Q = q8.rows, K = k8.rows, V = v8.rows;
    scale = scale * q8.scale * k8.scale;
    out_scale = v8.scale / kE4m3Max;
  } else {
    Q = cpu::read(q, scratch_, cpu::kIn0);
    K = cpu::read(k, scratch_, cpu::kIn1);
    V = cpu::read(v, scratch_, cpu::kIn2);
  }
  const Rows O = cpu::write(o, scratch_, cpu::kOut);

  constexpr int64_t kQueryBlock = 256;
  float* S = scratch_.get(cpu::kScores, size_t(std::min(Lq, kQueryBlock) * Lk));  // [block, Lk]
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t q0 = 0; q0 < Lq; q0 += kQueryBlock) {
      const int64_t nq = std::min(kQueryBlock, Lq - q0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(Lk), int(D), scale,
                  Q.row(q0) + h * D, int(Q.ld), K.data + h * D, int(K.ld), 0.0f, S, int(Lk));
#pragma omp parallel for
      for (int64_t i = 0; i < nq; ++i) {
        float* row = S + i * Lk;
        const int64_t query = q0 + i;
        // Keys after the query are masked out (their probability is exactly 0).
        const int64_t seen = causal ? std::min(Lk, query + 1) : Lk;
        if (bias) {
          const float* b = bias + (h * Lq + query) * Lk;  // bias[h, query, :]
          for (int64_t j = 0; j < seen; ++j) row[j] += b[j];
        }
        const float mx = *std::max_element(row, row + seen);
        double sum = 0.0;
        for (int64_t j = 0; j < seen; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < seen; ++j) row[j] *= inv;
        if (rule.fp8)  // P in e4m3 at scale 448 (P <= 1: never saturates)
          for (int64_t j = 0; j < seen; ++j) row[j] = e4m3_to_float(float_to_e4m3(row[j] * kE4m3Max));
        std::fill(row + seen, row + Lk, 0.0f);
        if (plse) plse[query * H + h] = mx + float(std::log(sum));
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(D), int(Lk), out_scale, S,
                  int(Lk), V.data + h * D, int(V.ld), 0.0f, O.row(q0) + h * D, int(O.ld));
    }
  }
  cpu::store(O, o);
}

void CpuBackend::attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                                 const Tensor& lse) {
  // o, o_part: [L, H, D]; lse, lse_part: [L, H] f32; (o, lse) updated in place, in f32.
  FRESCO_ASSERT(o.rank() == 3 && o.shape() == o_part.shape() && lse.shape() == lse_part.shape() &&
                    lse.numel() == o.dim(0) * o.dim(1),
                "attention_merge: o " + o.describe() + ", lse " + lse.describe() + ", o_part " +
                    o_part.describe() + ", lse_part " + lse_part.describe());
  for (const Tensor* t : {&lse, &lse_part})
    FRESCO_ASSERT(t->dtype() == DType::f32 && t->contiguous() && t->device() == Device::cpu,
                  "attention_merge: lse " + t->describe() + " should be contiguous f32");
  const int64_t L = o.dim(0), H = o.dim(1), D = o.dim(2);
  const Rows part = cpu::read(o_part, scratch_, cpu::kIn0);
  const Rows acc = cpu::update(o, scratch_, cpu::kOut);
  float* pl = lse.data<float>();
  const float* plp = lse_part.data<float>();
  constexpr float kEmpty = -std::numeric_limits<float>::infinity();  // lse of no keys
#pragma omp parallel for
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t r = l * H + h;
      const float a = pl[r], b = plp[r];
      float* po = acc.row(l) + h * D;
      const float* pp = part.row(l) + h * D;
      if (b == kEmpty) continue;  // nothing to merge
      if (a == kEmpty) {          // nothing merged yet: take the part (o may hold anything)
        std::copy_n(pp, D, po);
        pl[r] = b;
        continue;
      }
      const float mx = std::max(a, b);
      const float merged = mx + std::log(std::exp(a - mx) + std::exp(b - mx));
      const float wa = std::exp(a - merged), wb = std::exp(b - merged);
      for (int64_t d = 0; d < D; ++d) po[d] = wa * po[d] + wb * pp[d];
      pl[r] = merged;
    }
  cpu::store(acc, o);
}

}  // namespace fresco
