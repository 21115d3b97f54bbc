// Normalisation kernels: LayerNorm (+ modulate, fused), per-head RMSNorm (+ RoPE, fused) and
// RoPE alone. Statistics in f32 over a row (LayerNorm: one block per row, two passes for the
// mean and the variance) or a head (RMSNorm: one warp per head; rows of 16-byte-aligned runs
// of 4 use the vectorised kernel that reads each head once into registers).
#include <type_traits>

#include "cuda/kernels_common.cuh"
#include "src/core/tuning.hpp"

namespace fresco::cuda {
namespace {

constexpr int kRowThreads = 256;

// Affine: y = n * scale[c] + shift[c] (a LayerNorm's weight and bias) instead of the modulation.
template <typename Tx, typename Ty, bool Affine = false>
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
      if (Affine) n = load_dt(scale.data, scale.dt, c) * n + load_dt(shift.data, shift.dt, c);
      else if (scale.data) n = (1.0f + load_dt(scale.data, scale.dt, c)) * n + load_dt(shift.data, shift.dt, c);
      out[c] = from_f<Ty>(n);
    }
  }
}

// LayerNorm (+ modulate) of rows of at most kLnThreads * 8 * kLnMaxVec elements, C % 8 == 0,
// 16-byte-aligned rows: one block per row reads the row once into registers (16-byte loads),
// reduces the mean and then the variance from the registers, and writes the row once; the
// modulation vectors are read with 16-byte loads too. One pass over memory instead of three.
// In place is safe: every read of the row precedes the block reductions' barriers.
constexpr int kLnThreads = 128, kLnMaxVec = 4;

//
// Quantize (norm_modulate_fp8): the row, rounded to T as y would store it, is kept in registers
// and stored as e4m3 with one scale per row instead (qout, qscale), exactly what quantize_rows of
// the stored y would give.
template <typename T, typename Tm, bool Quantize = false>
__global__ void __launch_bounds__(kLnThreads)
    layer_norm_vec_kernel(Mat x, const Tm* shift, const Tm* scale, float eps, Mat y, Mat qout = {}, float* qscale = nullptr) {
  __shared__ float shared[33];
  const int64_t C = x.cols, nv = C / 8;
  for (int64_t r = blockIdx.x; r < x.rows; r += gridDim.x) {
    const T* in = at<const T>(x, r, 0);
    float v[kLnMaxVec][8];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kLnMaxVec; ++k) {
      const int64_t j = threadIdx.x + int64_t(k) * kLnThreads;
      if (j < nv) {
        load8(in + 8 * j, v[k]);
#pragma unroll
        for (int i = 0; i < 8; ++i) s += v[k][i];
      }
    }
    const float mean = block_sum(s, shared) / float(C);
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < kLnMaxVec; ++k) {
      const int64_t j = threadIdx.x + int64_t(k) * kLnThreads;
      if (j < nv) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float d = v[k][i] - mean;
          q += d * d;
        }
      }
    }
    const float inv = 1.0f / sqrtf(block_sum(q, shared) / float(C) + eps);
    T* out = Quantize ? nullptr : at<T>(y, r, 0);
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < kLnMaxVec; ++k) {
      const int64_t j = threadIdx.x + int64_t(k) * kLnThreads;
      if (j < nv) {
        float o[8];
        if (scale) {
          float sc[8], sh[8];
          load8(scale + 8 * j, sc);
          load8(shift + 8 * j, sh);
#pragma unroll
          for (int i = 0; i < 8; ++i) o[i] = (1.0f + sc[i]) * ((v[k][i] - mean) * inv) + sh[i];
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) o[i] = (v[k][i] - mean) * inv;
        }
        if constexpr (Quantize) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            v[k][i] = to_f(from_f<T>(o[i]));  // the value y would hold
            amax = fmaxf(amax, fabsf(v[k][i]));
          }
        } else {
          store8(out + 8 * j, o);
        }
      }
    }
    if constexpr (Quantize) {
      const float qs = e4m3_scale_of(block_max(amax, shared));
      if (threadIdx.x == 0) qscale[r] = qs;
      auto* qrow = at<__nv_fp8_storage_t>(qout, r, 0);
#pragma unroll
      for (int k = 0; k < kLnMaxVec; ++k) {
        const int64_t j = threadIdx.x + int64_t(k) * kLnThreads;
        if (j < nv) *reinterpret_cast<uint2*>(qrow + 8 * j) = to_e4m3x8(v[k], qs);
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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

// RMSNorm (+ RoPE) of whole rows, 16-byte accesses: one warp per row, D/8 lanes per head (D a
// multiple of 8, at most 256), 256/D heads per pass of the warp, up to kRowBatch passes in
// flight. The scale and the row's cos/sin (the same for every head of the row) are read once
// per row; each lane reads and writes only its own 8 elements, and a head's sum of squares is
// a shuffle among its own lanes, so in place is safe.
constexpr int kRowBatch = 4;

bool rope_rows_enabled() {
  static const bool on = tuning::flag(tuning::Switch::cuda_rope_rows);
  return on;
}

template <typename T>
__global__ void rms_norm_rope_rows_kernel(Mat x, int64_t H, int64_t D, bool normalize, Vec scale,
                                          float eps, Mat cs, Mat sn, Mat y) {
  const int lane = threadIdx.x & 31;
  const int lanes_per_head = int(D / 8), heads_per_pass = 32 / lanes_per_head;
  const int sub = lane % lanes_per_head, slot = lane / lanes_per_head;
  const int64_t d = int64_t(sub) * 8;  // this lane's 8 elements of a head
  const int64_t passes = (H + heads_per_pass - 1) / heads_per_pass;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  float sc[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) sc[j] = normalize ? load_dt(scale.data, scale.dt, d + j) : 1.0f;
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < x.rows; r += warps) {
    float c[4], s[4];
    if (cs.data) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        c[k] = load_dt(cs.data, cs.dt, r * cs.ld + d / 2 + k);
        s[k] = load_dt(sn.data, sn.dt, r * sn.ld + d / 2 + k);
      }
    }
    const T* in = at<const T>(x, r, 0);
    T* out = at<T>(y, r, 0);
    for (int64_t p0 = 0; p0 < passes; p0 += kRowBatch) {
      float v[kRowBatch][8];
      float ss[kRowBatch];
#pragma unroll
      for (int b = 0; b < kRowBatch; ++b) {
        const int64_t h = (p0 + b) * heads_per_pass + slot;
        ss[b] = 0.0f;
        if (p0 + b < passes && h < H) {
          load8(in + h * D + d, v[b]);
#pragma unroll
          for (int j = 0; j < 8; ++j) ss[b] += v[b][j] * v[b][j];
        }
      }
#pragma unroll
      for (int b = 0; b < kRowBatch; ++b)
        for (int o = lanes_per_head / 2; o > 0; o >>= 1) ss[b] += __shfl_xor_sync(0xffffffffu, ss[b], o);
#pragma unroll
      for (int b = 0; b < kRowBatch; ++b) {
        const int64_t h = (p0 + b) * heads_per_pass + slot;
        if (p0 + b >= passes || h >= H) continue;
        const float inv = normalize ? 1.0f / sqrtf(ss[b] / float(D) + eps) : 1.0f;
        float n[8], o[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) n[j] = normalize ? v[b][j] * inv * sc[j] : v[b][j];
        if (cs.data) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            o[2 * k] = c[k] * n[2 * k] - s[k] * n[2 * k + 1];
            o[2 * k + 1] = s[k] * n[2 * k] + c[k] * n[2 * k + 1];
          }
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) o[j] = n[j];
        }
        store8(out + h * D + d, o);
      }
    }
  }
}

}  // namespace

void layer_norm_affine(Mat x, Vec weight, Vec bias, float eps, Mat y, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  // CLIP's 77 rows of 768: the three-pass kernel is plenty.
  const unsigned blocks = unsigned(x.rows < 65535 * 4 ? x.rows : 65535 * 4);
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      layer_norm_kernel<typename decltype(tx)::type, typename decltype(ty)::type, true>
          <<<blocks, kRowThreads, 0, stream>>>(x, bias, weight, eps, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void layer_norm(Mat x, Vec shift, Vec scale, float eps, Mat y, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  const unsigned blocks = unsigned(x.rows < 65535 * 4 ? x.rows : 65535 * 4);
  // Rows that fit in registers: one pass (layer_norm_vec_kernel; −3.0 ms per 1024² FLUX step
  // against the three passes below, docs/performance.md).
  const bool modulated = scale.data != nullptr;
  if (x.dt == y.dt && x.cols % 8 == 0 && x.cols <= kLnThreads * 8 * kLnMaxVec &&
      vector_ok(x, 8) && vector_ok(y, 8) &&
      (!modulated || (shift.dt == scale.dt && aligned16(shift.data) && aligned16(scale.data)))) {
    dispatch_float(x.dt, [&](auto t) {
      using T = typename decltype(t)::type;
      dispatch_float(modulated ? scale.dt : x.dt, [&](auto tm) {
        using Tm = typename decltype(tm)::type;
        layer_norm_vec_kernel<T, Tm><<<blocks, kLnThreads, 0, stream>>>(
            x, static_cast<const Tm*>(shift.data), static_cast<const Tm*>(scale.data), eps, y);
      });
    });
    FRESCO_CUDA_LAUNCHED();
    return;
  }
  // Else one block per row, three passes over the row (L2-resident); a warp-per-row variant
  // holding the row in registers measured slower at FLUX's width (3072) on an H200.
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      layer_norm_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<blocks, kRowThreads, 0, stream>>>(x, shift, scale, eps, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

bool layer_norm_fp8(Mat x, Vec shift, Vec scale, float eps, Mat q, float* qscale, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return true;
  const bool q_words = reinterpret_cast<uintptr_t>(q.data) % 8 == 0 && (x.rows <= 1 || q.ld % 8 == 0);
  if (x.dt == kF32 || shift.dt != scale.dt || shift.dt != x.dt || !scale.data || x.cols % 8 != 0 ||
      x.cols > kLnThreads * 8 * kLnMaxVec || !vector_ok(x, 8) || !q_words || !aligned16(shift.data) ||
      !aligned16(scale.data))
    return false;
  const unsigned blocks = unsigned(x.rows < 65535 * 4 ? x.rows : 65535 * 4);
  dispatch_float(x.dt, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (!std::is_same_v<T, float>)
      layer_norm_vec_kernel<T, T, true><<<blocks, kLnThreads, 0, stream>>>(
          x, static_cast<const T*>(shift.data), static_cast<const T*>(scale.data), eps, Mat{}, q, qscale);
  });
  FRESCO_CUDA_LAUNCHED();
  return true;
}

void rms_norm_rope(Mat x, int64_t heads, int64_t head_dim, bool normalize, Vec scale, float eps,
                   Mat cos, Mat sin, Mat y, cudaStream_t stream) {
  const int64_t n = x.rows * heads;
  if (n == 0 || head_dim == 0) return;
  constexpr int kThreads = 256, kWarps = kThreads / 32;
  const unsigned blocks = grid_for(n, kWarps);
  const bool vec = head_dim % 4 == 0 && head_dim <= 256 && vector_ok(x, 4) && vector_ok(y, 4);
  // Whole rows per warp (rms_norm_rope_rows_kernel): heads of 8..256 elements, lanes per head
  // a power of two, same dtype in and out, 16-byte accesses.
  const int64_t lanes = head_dim / 8;
  if (rope_rows_enabled() && x.dt == y.dt && head_dim % 8 == 0 && lanes >= 1 && lanes <= 32 &&
      (lanes & (lanes - 1)) == 0 && vector_ok(x, 8) && vector_ok(y, 8)) {
    const unsigned row_blocks = grid_for(x.rows, kWarps);
    dispatch_float(x.dt, [&](auto t) {
      using T = typename decltype(t)::type;
      rms_norm_rope_rows_kernel<T><<<row_blocks, kThreads, 0, stream>>>(x, heads, head_dim, normalize, scale,
                                                                         eps, cos, sin, y);
    });
    FRESCO_CUDA_LAUNCHED();
    return;
  }
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
