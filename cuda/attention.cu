// Attention kernels: a tiled attention with an online softmax (the fallback where cuDNN's
// fused SDPA is unavailable or declines, and the f32 path), the log-sum-exp merge of partial
// attentions (Ring attention), and the transposition of cuDNN's head-major statistics.
//
// attention_kernel: one block of 4 warps per (tile of 16 queries, head); each warp owns 4
// queries. K and V tiles of 32 keys are staged in shared memory as f32 (K rows padded by one
// word so that lane j reading key j is free of bank conflicts). For each query a lane scores
// one key of the tile, the warp takes the tile's max and sum by shuffles, rescales its running
// output and adds p_j v_j with lane-owned output dimensions (d = lane + 32 c). f32 throughout;
// the output is rounded once at the store.
#include <type_traits>

#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr int kWarps = 4, kQueriesPerWarp = 4, kQueryTile = kWarps * kQueriesPerWarp,
              kKeyTile = 32;

size_t attention_smem_bytes(int64_t D) {
  return size_t(kQueryTile * D + kKeyTile * (D + 1) + kKeyTile * D) * sizeof(float);
}

// Masked (attention_bias): the score of key j for query i gains bias[h, i, j] (nullable) and is
// -inf where causal and j > i. Key 0 is never masked, so the first tile's maximum is finite.
template <typename T, int NC, bool Masked>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(Mat q, Mat k, Mat v, Mat o, int D, float scale, float* lse, int H, const float* bias,
                     bool causal) {
  extern __shared__ float smem[];
  float* sq = smem;                       // [kQueryTile][D], pre-scaled
  float* sk = sq + kQueryTile * D;        // [kKeyTile][D + 1]
  float* sv = sk + kKeyTile * (D + 1);    // [kKeyTile][D]
  const int h = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t q0 = int64_t(blockIdx.x) * kQueryTile, Lq = q.rows, Lk = k.rows;
  const int64_t col = int64_t(h) * D;

  for (int i = threadIdx.x; i < kQueryTile * D; i += blockDim.x) {
    const int qi = i / D, d = i - qi * D;
    const int64_t row = q0 + qi;
    sq[i] = row < Lq ? to_f(*at<const T>(q, row, col + d)) * scale : 0.0f;
  }
  float m[kQueriesPerWarp], l[kQueriesPerWarp], acc[kQueriesPerWarp][NC];
#pragma unroll
  for (int qq = 0; qq < kQueriesPerWarp; ++qq) {
    m[qq] = -INFINITY;
    l[qq] = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[qq][c] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < Lk; j0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and the query tile is staged)
    for (int i = threadIdx.x; i < kKeyTile * D; i += blockDim.x) {
      const int jj = i / D, d = i - jj * D;
      const int64_t row = j0 + jj;
      float kv = 0.0f, vv = 0.0f;
      if (row < Lk) {
        kv = to_f(*at<const T>(k, row, col + d));
        vv = to_f(*at<const T>(v, row, col + d));
      }
      sk[jj * (D + 1) + d] = kv;
      sv[jj * D + d] = vv;
    }
    __syncthreads();
    const bool valid = j0 + lane < Lk;
    const float* krow = sk + lane * (D + 1);
#pragma unroll
    for (int qq = 0; qq < kQueriesPerWarp; ++qq) {
      const float* qrow = sq + (warp * kQueriesPerWarp + qq) * D;
      float s = 0.0f;
      for (int d = 0; d < D; ++d) s = fmaf(qrow[d], krow[d], s);
      if constexpr (Masked) {
        const int64_t query = q0 + warp * kQueriesPerWarp + qq, key = j0 + lane;
        if (bias && valid && query < Lq) s += bias[(int64_t(h) * Lq + query) * Lk + key];
        if (causal && key > query) s = -INFINITY;
      }
      s = valid ? s : -INFINITY;
      const float mn = fmaxf(m[qq], warp_max(s));  // finite: key j0 is valid
      const float p = valid ? expf(s - mn) : 0.0f;
      const float corr = expf(m[qq] - mn);  // 0 on the first tile
      l[qq] = l[qq] * corr + warp_sum(p);
      m[qq] = mn;
#pragma unroll
      for (int c = 0; c < NC; ++c) acc[qq][c] *= corr;
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
        const float* vrow = sv + jj * D;
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          const int d = c * 32 + lane;
          if (d < D) acc[qq][c] = fmaf(pj, vrow[d], acc[qq][c]);
        }
      }
    }
  }

#pragma unroll
  for (int qq = 0; qq < kQueriesPerWarp; ++qq) {
    const int64_t row = q0 + warp * kQueriesPerWarp + qq;
    if (row >= Lq) continue;
    const float inv = l[qq] > 0.0f ? 1.0f / l[qq] : 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = c * 32 + lane;
      if (d < D) *at<T>(o, row, col + d) = from_f<T>(acc[qq][c] * inv);
    }
    if (lse && lane == 0) lse[row * H + h] = l[qq] > 0.0f ? m[qq] + logf(l[qq]) : -INFINITY;
  }
}

template <typename T, int NC, bool Masked>
void launch_attention(Mat q, Mat k, Mat v, Mat o, int64_t H, int64_t D, float scale, float* lse,
                      const float* bias, bool causal, cudaStream_t stream) {
  const size_t smem = attention_smem_bytes(D);
  if (smem > 48 * 1024)
    FRESCO_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T, NC, Masked>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned((q.rows + kQueryTile - 1) / kQueryTile), unsigned(H));
  attention_kernel<T, NC, Masked>
      <<<grid, kWarps * 32, smem, stream>>>(q, k, v, o, int(D), scale, lse, int(H), bias, causal);
  FRESCO_CUDA_LAUNCHED();
}

// The tiled kernel for head dims up to kAttentionMaxHeadDim, its register tile picked by D.
template <bool Masked>
void attention_tiled(Mat q, Mat k, Mat v, Mat o, int64_t heads, int64_t head_dim, float scale, float* lse,
                     const float* bias, bool causal, cudaStream_t stream) {
  if (q.rows == 0 || heads == 0) return;
  FRESCO_ASSERT(head_dim > 0 && head_dim <= kAttentionMaxHeadDim,
                "attention kernel: head dim " + std::to_string(head_dim));
  FRESCO_ASSERT(q.dt == k.dt && q.dt == v.dt && q.dt == o.dt,
                "attention kernel: q, k, v and o share one dtype");
  dispatch_float(q.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto run = [&](auto nc) {
      launch_attention<T, decltype(nc)::value, Masked>(q, k, v, o, heads, head_dim, scale, lse, bias, causal, stream);
    };
    if (head_dim <= 32) run(std::integral_constant<int, 1>{});
    else if (head_dim <= 64) run(std::integral_constant<int, 2>{});
    else if (head_dim <= 128) run(std::integral_constant<int, 4>{});
    else run(std::integral_constant<int, 8>{});
  });
}

// One warp per (row, head).
template <typename Tp, typename To>
__global__ void attention_merge_kernel(Mat op, const float* lse_part, Mat o, float* lse, int64_t H,
                                       int64_t D) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); w < o.rows * H;
       w += warps) {
    const int64_t r = w / H, h = w - r * H;
    const float a = lse[w], b = lse_part[w];
    const float mx = fmaxf(a, b);
    float merged = mx, wa = 0.0f, wb = 0.0f;
    if (mx != -INFINITY) {
      merged = mx + logf(expf(a - mx) + expf(b - mx));
      wa = expf(a - merged);
      wb = expf(b - merged);
    }
    const Tp* pp = at<const Tp>(op, r, h * D);
    To* po = at<To>(o, r, h * D);
    for (int64_t d = lane; d < D; d += 32) po[d] = from_f<To>(wa * to_f(po[d]) + wb * to_f(pp[d]));
    __syncwarp();
    if (lane == 0) lse[w] = merged;
  }
}

__global__ void heads_to_tokens_kernel(const float* stats, float* lse, int64_t L, int64_t H) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L * H;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t l = i / H, h = i - l * H;
    lse[i] = stats[h * L + l];
  }
}

}  // namespace

void attention(Mat q, Mat k, Mat v, Mat o, int64_t heads, int64_t head_dim, float scale,
               float* lse, cudaStream_t stream) {
  attention_tiled<false>(q, k, v, o, heads, head_dim, scale, lse, nullptr, false, stream);
}

void attention_bias(Mat q, Mat k, Mat v, Mat o, int64_t heads, int64_t head_dim, float scale,
                    const float* bias, bool causal, cudaStream_t stream) {
  attention_tiled<true>(q, k, v, o, heads, head_dim, scale, nullptr, bias, causal, stream);
}

void attention_merge(Mat o_part, const float* lse_part, Mat o, float* lse, int64_t heads,
                     int64_t head_dim, cudaStream_t stream) {
  const int64_t n = o.rows * heads;
  if (n == 0) return;
  constexpr int kThreads = 256;
  dispatch_float(o_part.dt, [&](auto tp) {
    dispatch_float(o.dt, [&](auto to) {
      attention_merge_kernel<typename decltype(tp)::type, typename decltype(to)::type>
          <<<grid_for(n, kThreads / 32), kThreads, 0, stream>>>(o_part, lse_part, o, lse, heads,
                                                                 head_dim);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void heads_to_tokens(const float* stats, float* lse, int64_t L, int64_t H, cudaStream_t stream) {
  if (L * H == 0) return;
  heads_to_tokens_kernel<<<grid_for(L * H, 256), 256, 0, stream>>>(stats, lse, L, H);
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
