// Device helpers shared by the CUDA translation units: element loads/stores with f32 compute,
// dtype dispatch, reductions, launch checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/kernels.hpp"

namespace fresco::cuda {

// ---- element conversion (f32 compute, one rounding at the store) ----------------------------

template <typename T>
__device__ __forceinline__ float to_f(T v);
template <>
__device__ __forceinline__ float to_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f<double>(double v) { return float(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

// A dense vector element of a run-time dtype (per-channel vectors, tables, scalars): the
// dtype is uniform across a launch, so the switch costs no divergence.
__device__ __forceinline__ float load_dt(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kF32: return static_cast<const float*>(p)[i];
    case kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case kF64: return float(static_cast<const double*>(p)[i]);
    default: return 0.0f;
  }
}
__device__ __forceinline__ double load_dt_f64(const void* p, int dt, int64_t i) {
  return dt == kF64 ? static_cast<const double*>(p)[i] : double(load_dt(p, dt, i));
}

// ---- vector loads and stores (f32 compute) -------------------------------------------------
//
// load8/store8: 8 consecutive elements (one 16-byte access for 16-bit types, two for f32);
// load4/store4: 4 elements (8 bytes for 16-bit types, 16 for f32). The pointer must be aligned
// to the access size (the launchers check with vector_ok()).

__device__ __forceinline__ void unpack2(__nv_bfloat162 h, float& a, float& b) {
  const float2 v = __bfloat1622float2(h);
  a = v.x;
  b = v.y;
}
__device__ __forceinline__ void unpack2(__half2 h, float& a, float& b) {
  const float2 v = __half22float2(h);
  a = v.x;
  b = v.y;
}
template <typename T2>
__device__ __forceinline__ T2 pack2(float a, float b);
template <>
__device__ __forceinline__ __nv_bfloat162 pack2<__nv_bfloat162>(float a, float b) { return __floats2bfloat162_rn(a, b); }
template <>
__device__ __forceinline__ __half2 pack2<__half2>(float a, float b) { return __floats2half2_rn(a, b); }

template <typename T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
};
template <>
struct Pair<__half> {
  using type = __half2;
};

// 8 16-bit values of type T held as one 16-byte word (a row kept in registers at half the
// registers of f32), widened.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[8]) {
  const auto* h = reinterpret_cast<const typename Pair<T>::type*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) unpack2(h[i], f[2 * i], f[2 * i + 1]);
}
template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&f)[8]) {
  unpack8<T>(*reinterpret_cast<const uint4*>(p), f);
}
template <>
__device__ __forceinline__ void load8<float>(const float* p, float (&f)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
template <typename T>
__device__ __forceinline__ void store8(T* p, const float (&f)[8]) {
  uint4 u;
  auto* h = reinterpret_cast<typename Pair<T>::type*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = pack2<typename Pair<T>::type>(f[2 * i], f[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = u;
}
template <>
__device__ __forceinline__ void store8<float>(float* p, const float (&f)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
}
template <typename T>
__device__ __forceinline__ void load4(const T* p, float (&f)[4]) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const auto* h = reinterpret_cast<const typename Pair<T>::type*>(&u);
  unpack2(h[0], f[0], f[1]);
  unpack2(h[1], f[2], f[3]);
}
template <>
__device__ __forceinline__ void load4<float>(const float* p, float (&f)[4]) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
}
template <typename T>
__device__ __forceinline__ void store4(T* p, const float (&f)[4]) {
  uint2 u;
  auto* h = reinterpret_cast<typename Pair<T>::type*>(&u);
  h[0] = pack2<typename Pair<T>::type>(f[0], f[1]);
  h[1] = pack2<typename Pair<T>::type>(f[2], f[3]);
  *reinterpret_cast<uint2*>(p) = u;
}
template <>
__device__ __forceinline__ void store4<float>(float* p, const float (&f)[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(f[0], f[1], f[2], f[3]);
}

// Whether every row of `m` can be read in runs of `n` elements with aligned vector accesses
// (n * element size bytes): the start, the row stride and the row width all fit. Off when the
// environment sets FRESCO_CUDA_VECTOR=0 (the scalar kernels then serve, for comparisons).
bool vector_kernels_enabled();
inline bool vector_ok(const Mat& m, int n) {
  const size_t bytes = size_t(n) * dt_size(m.dt);
  return vector_kernels_enabled() && m.cols % n == 0 &&
         reinterpret_cast<uintptr_t>(m.data) % bytes == 0 && (m.rows <= 1 || (size_t(m.ld) * dt_size(m.dt)) % bytes == 0);
}

// ---- dispatch ------------------------------------------------------------------------------

template <typename T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the CUDA type of a float dtype (f32, bf16, f16).
template <typename F>
void dispatch_float(int dt, F&& f) {
  switch (dt) {
    case kF32: f(Tag<float>{}); return;
    case kBF16: f(Tag<__nv_bfloat16>{}); return;
    case kF16: f(Tag<__half>{}); return;
    default: break;
  }
  throw ::fresco::Error("internal error: CUDA kernel for a non-float dtype " + std::to_string(dt));
}

// ---- reductions ----------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// A reduction over the block (blockDim.x a multiple of 32, at most 1024) of `warp_reduce`'s
// operation (`identity` its neutral value); every thread gets the result. `shared` holds 33
// values of T.
template <typename T, typename WarpReduce>
__device__ __forceinline__ T block_reduce(T v, T* shared, T identity, WarpReduce warp_reduce) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? shared[lane] : identity;
    w = warp_reduce(w);
    if (lane == 0) shared[32] = w;
  }
  __syncthreads();
  return shared[32];
}
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  return block_reduce(v, shared, T(0), [](T x) { return warp_sum(x); });
}
// The maximum (of non-negative values: the identity is 0).
__device__ __forceinline__ float block_max(float v, float* shared) {
  return block_reduce(v, shared, 0.0f, [](float x) { return warp_max(x); });
}

// ---- e4m3 (FP8) ------------------------------------------------------------------------------

// The per-row scale of quantize_rows: amax / 448, or 1 for a row of zeros.
__device__ __forceinline__ float e4m3_scale_of(float amax) { return amax > 0 ? __fdiv_rn(amax, 448.0f) : 1.0f; }
// 8 values divided by `scale` (rounded to nearest) and converted to e4m3 (nearest even,
// saturated at +-448), packed in memory order: the bytes quantize_rows stores.
__device__ __forceinline__ uint2 to_e4m3x8(const float (&v)[8], float scale) {
  union {
    uint2 word;
    __nv_fp8_storage_t bytes[8];
  } pack;
#pragma unroll
  for (int e = 0; e < 8; ++e) pack.bytes[e] = __nv_cvt_float_to_fp8(__fdiv_rn(v[e], scale), __NV_SATFINITE, __NV_E4M3);
  return pack.word;
}

// ---- launches ------------------------------------------------------------------------------

inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b > max_blocks) b = max_blocks;
  return unsigned(b < 1 ? 1 : b);
}

#define FRESCO_CUDA_LAUNCHED() FRESCO_CUDA_CHECK(cudaGetLastError())

// Element (r, c) of a Mat of type T.
template <typename T>
__device__ __forceinline__ T* at(const Mat& m, int64_t r, int64_t c) {
  return static_cast<T*>(m.data) + r * m.ld + c;
}

}  // namespace fresco::cuda
