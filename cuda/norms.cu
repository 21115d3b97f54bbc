// Normalisation kernels: LayerNorm (+ modulate, fused), per-head RMSNorm (+ RoPE, fused) and
// RoPE alone. Statistics in f32 over a row (LayerNorm: one block per row, two passes for the
// mean and the variance) or a head (RMSNorm: one warp per head; rows of 16-byte-aligned runs
// of 4 use the vectorised kernel that reads each head once into registers).
#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr int kRowThreads = 256;

template <typename Tx, typename Ty>
__global__ void __launch_bounds__(kRowThreads)
    layer_norm_kernel(Mat x, Vec shift, Vec scale, float eps, Mat y) {
  __shared__ float shared[33];
  const int64_t C = x.cols;
  for (int64_t r = blockIdx.x; r < x.rows; r += gridDim.x) {
    const Tx* in = at<const Tx>(x, r, 0);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += to_f(in[c]);
    const float mean = block_sum(s, shared) / float(C);
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float d = to_f(in[c]) - mean;
      v += d * d;
    }
    const float inv = 1.0f / sqrtf(block_sum(v, shared) / float(C) + eps);
    Ty* out = at<Ty>(y, r, 0);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float n = (to_f(in[c]) - mean) * inv;
      if (scale.data) n = (1.0f + load_dt(scale.data, scale.dt, c)) * n + load_dt(shift.data, shift.dt, c);
      out[c] = from_f<Ty>(n);
    }
  }
}

// One warp per (row, head). In place is safe: the sum of squares (a warp-wide shuffle) completes
// every read of the head before any lane writes, and each lane then reads and writes only its own
// elements.
template <typename Tx, typename Ty>
__global__ void rms_norm_rope_kernel(Mat x, int64_t H, int64_t D, bool normalize, Vec scale,
                                     float eps, Mat cs, Mat sn, Mat y) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); w < x.rows * H;
       w += warps) {
    const int64_t r = w / H, h = w - r * H;
    const Tx* in = at<const Tx>(x, r, h * D);
    Ty* out = at<Ty>(y, r, h * D);
    float inv = 1.0f;
    if (normalize) {
      float ss = 0.0f;
      for (int64_t d = lane; d < D; d += 32) {
        const float v = to_f(in[d]);
        ss += v * v;
      }
      ss = warp_sum(ss);
      inv = 1.0f / sqrtf(ss / float(D) + eps);
    }
    if (cs.data) {
      for (int64_t p = lane; p < D / 2; p += 32) {
        float x0 = to_f(in[2 * p]), x1 = to_f(in[2 * p + 1]);
        if (normalize) {
          x0 = x0 * inv * load_dt(scale.data, scale.dt, 2 * p);
          x1 = x1 * inv * load_dt(scale.data, scale.dt, 2 * p + 1);
        }
        const float c = load_dt(cs.data, cs.dt, r * cs.ld + p);
        const float s = load_dt(sn.data, sn.dt, r * sn.ld + p);
        out[2 * p] = from_f<Ty>(c * x0 - s * x1);
        out[2 * p + 1] = from_f<Ty>(s * x0 + c * x1);
      }
    } else {
      for (int64_t d = lane; d < D; d += 32)
        out[d] = from_f<Ty>(to_f(in[d]) * inv * load_dt(scale.data, scale.dt, d));
    }
  }
}

// Vectorised RMSNorm (+ RoPE): one warp per head, runs of 4 elements (2 rotation pairs) per
// lane, NC runs per lane (D <= 128 NC), the head held in registers.
template <typename Tx, typename Ty, int NC>
__global__ void rms_norm_rope_vec_kernel(Mat x, int64_t H, int64_t D, bool normalize, Vec scale,
                                         float eps, Mat cs, Mat sn, Mat y) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); w < x.rows * H;
       w += warps) {
    const int64_t r = w / H, h = w - r * H;
    const Tx* in = at<const Tx>(x, r, h * D);
    Ty* out = at<Ty>(y, r, h * D);
    float v[NC][4];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < NC; ++i) {
      const int64_t d = (int64_t(i) * 32 + lane) * 4;
      if (d < D) {
        load4(in + d, v[i]);
#pragma unroll
        for (int j = 0; j < 4; ++j) ss += v[i][j] * v[i][j];
      }
    }
    ss = warp_sum(ss);  // every lane's reads are done before any lane writes (in place is safe)
    const float inv = normalize ? 1.0f / sqrtf(ss / float(D) + eps) : 1.0f;
#pragma unroll
    for (int i = 0; i < NC; ++i) {
      const int64_t d = (int64_t(i) * 32 + lane) * 4;
      if (d >= D) continue;
      float n[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) n[j] = normalize ? v[i][j] * inv * load_dt(scale.data, scale.dt, d + j) : v[i][j];
      float o[4];
      if (cs.data) {
        const int64_t p = d / 2;
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          const float c = load_dt(cs.data, cs.dt, r * cs.ld + p + k);
          const float s = load_dt(sn.data, sn.dt, r * sn.ld + p + k);
          o[2 * k] = c * n[2 * k] - s * n[2 * k + 1];
          o[2 * k + 1] = s * n[2 * k] + c * n[2 * k + 1];
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) o[j] = n[j];
      }
      store4(out + d, o);
    }
  }
}

}  // namespace

void layer_norm(Mat x, Vec shift, Vec scale, float eps, Mat y, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  // One block per row, three passes over the row (L2-resident); a warp-per-row variant holding
  // the row in registers measured slower at FLUX's width (3072) on an H200.
  const unsigned blocks = unsigned(x.rows < 65535 * 4 ? x.rows : 65535 * 4);
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      layer_norm_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<blocks, kRowThreads, 0, stream>>>(x, shift, scale, eps, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void rms_norm_rope(Mat x, int64_t heads, int64_t head_dim, bool normalize, Vec scale, float eps,
                   Mat cos, Mat sin, Mat y, cudaStream_t stream) {
  const int64_t n = x.rows * heads;
  if (n == 0 || head_dim == 0) return;
  constexpr int kThreads = 256, kWarps = kThreads / 32;
  const unsigned blocks = grid_for(n, kWarps);
  const bool vec = head_dim % 4 == 0 && head_dim <= 256 && vector_ok(x, 4) && vector_ok(y, 4);
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      using Tx = typename decltype(tx)::type;
      using Ty = typename decltype(ty)::type;
      if (vec && head_dim <= 128)
        rms_norm_rope_vec_kernel<Tx, Ty, 1>
            <<<blocks, kThreads, 0, stream>>>(x, heads, head_dim, normalize, scale, eps, cos, sin, y);
      else if (vec)
        rms_norm_rope_vec_kernel<Tx, Ty, 2>
            <<<blocks, kThreads, 0, stream>>>(x, heads, head_dim, normalize, scale, eps, cos, sin, y);
      else
        rms_norm_rope_kernel<Tx, Ty><<<blocks, kThreads, 0, stream>>>(x, heads, head_dim, normalize, scale,
                                                                     eps, cos, sin, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
