// FP8 communication kernels: per-row scaled e4m3 (the CPU reference: src/backend/cpu_quantize.cpp).
// One block per row: the row's absolute maximum, then the scaled conversion with the hardware's
// round-to-nearest-even, saturating cvt (the CPU rounds the same way, so both give the same
// bytes).
#include <cuda_fp8.h>

#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr int kQuantizeThreads = 256;
constexpr float kE4m3Max = 448.0f;

template <typename T>
__global__ void quantize_rows_kernel(Mat x, Mat q, float* scales) {
  __shared__ float partial[32];
  const int64_t r = blockIdx.x;
  float amax = 0;
  for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) amax = fmaxf(amax, fabsf(to_f(*at<const T>(x, r, c))));
  amax = warp_max(amax);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = amax;
  __syncthreads();
  if (warp == 0) {
    float m = lane < int(blockDim.x >> 5) ? partial[lane] : 0.0f;
    m = warp_max(m);
    if (lane == 0) partial[0] = m;
  }
  __syncthreads();
  amax = partial[0];
  const float scale = amax > 0 ? __fdiv_rn(amax, kE4m3Max) : 1.0f;
  if (threadIdx.x == 0) scales[r] = scale;
  for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) {
    const float v = __fdiv_rn(to_f(*at<const T>(x, r, c)), scale);
    *at<__nv_fp8_storage_t>(q, r, c) = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
  }
}

template <typename T>
__global__ void dequantize_rows_kernel(Mat q, const float* scales, Mat y) {
  const int64_t r = blockIdx.x;
  const float scale = scales[r];
  for (int64_t c = threadIdx.x; c < y.cols; c += blockDim.x) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(*at<const __nv_fp8_storage_t>(q, r, c), __NV_E4M3);
    *at<T>(y, r, c) = from_f<T>(__fmul_rn(__half2float(__half(h)), scale));
  }
}

}  // namespace

void quantize_rows(Mat x, Mat q, float* scales, cudaStream_t stream) {
  if (x.rows == 0) return;
  FRESCO_ASSERT(x.rows <= 0x7fffffff, "quantize_rows: too many rows");
  dispatch_float(x.dt, [&](auto t) {
    quantize_rows_kernel<typename decltype(t)::type><<<unsigned(x.rows), kQuantizeThreads, 0, stream>>>(x, q, scales);
  });
  FRESCO_CUDA_LAUNCHED();
}

void dequantize_rows(Mat q, const float* scales, Mat y, cudaStream_t stream) {
  if (y.rows == 0) return;
  FRESCO_ASSERT(y.rows <= 0x7fffffff, "dequantize_rows: too many rows");
  dispatch_float(y.dt, [&](auto t) {
    dequantize_rows_kernel<typename decltype(t)::type><<<unsigned(y.rows), kQuantizeThreads, 0, stream>>>(q, scales, y);
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
