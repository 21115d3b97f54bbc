// Kernels that serve the decoder's library paths (cuda/conv_cudnn.cpp, cuda/wide_attention.cpp):
//  - fill_rows: y[c, :] = bias[c], the value cuDNN's convolution then accumulates onto (beta 1),
//    so that conv + bias is computed in f32 and rounded once, as every op promises.
//  - softmax_rows: the softmax of one block of f32 attention scores per row, written as the
//    probabilities P (activation dtype) that the second product of the wide-head attention
//    reads, with each row's log-sum-exp for the Ring merge. Two passes over the row: an online
//    max/sum (each thread its strided elements, then a block reduction), then the normalised
//    exponentials.
#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

template <typename Ty>
__global__ void fill_rows_kernel(Vec bias, Mat y) {
  const int64_t c = blockIdx.y;
  const Ty v = from_f<Ty>(load_dt(bias.data, bias.dt, c));
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < y.cols; i += int64_t(gridDim.x) * blockDim.x)
    *at<Ty>(y, c, i) = v;
}

constexpr int kSoftmaxThreads = 512;

// Merges (m, l) pairs: l is the sum of exp(x - m) over the pair's elements.
__device__ __forceinline__ void merge_max_sum(float& m, float& l, float m2, float l2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;  // both empty
  l = l * __expf(m - mx) + l2 * __expf(m2 - mx);
  m = mx;
}

template <typename Tp>
__global__ void __launch_bounds__(kSoftmaxThreads)
    softmax_rows_kernel(const float* s, int64_t ld_s, int64_t n, float scale, Mat p, float* lse,
                        int64_t lse_stride) {
  __shared__ float sm[32], sl[32];
  const int64_t r = blockIdx.x;
  const float* row = s + r * ld_s;
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float x = row[j] * scale;
    if (x > m) {
      l = l * __expf(m - x) + 1.0f;
      m = x;
    } else {
      l += __expf(x - m);
    }
  }
  // Warp, then block: every thread ends with the row's (m, l).
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), l2 = __shfl_xor_sync(0xffffffffu, l, o);
    merge_max_sum(m, l, m2, l2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
  __syncthreads();
  m = -INFINITY;
  l = 0.0f;
  for (int w = 0; w < warps; ++w) merge_max_sum(m, l, sm[w], sl[w]);  // the same order in every thread
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  Tp* out = at<Tp>(p, r, 0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) out[j] = from_f<Tp>(__expf(row[j] * scale - m) * inv);
  if (lse && threadIdx.x == 0) lse[r * lse_stride] = l > 0.0f ? m + logf(l) : -INFINITY;
}

}  // namespace

void fill_rows(Vec bias, Mat y, cudaStream_t stream) {
  if (y.rows == 0 || y.cols == 0) return;
  FRESCO_ASSERT(y.rows <= 65535 && bias.n == y.rows, "fill_rows: " + std::to_string(y.rows) + " rows");
  const dim3 grid(grid_for(y.cols, 256, 4096), unsigned(y.rows));
  dispatch_float(y.dt, [&](auto ty) { fill_rows_kernel<typename decltype(ty)::type><<<grid, 256, 0, stream>>>(bias, y); });
  FRESCO_CUDA_LAUNCHED();
}

void softmax_rows(const float* s, int64_t ld_s, int64_t n, float scale, Mat p, float* lse, int64_t lse_stride,
                  cudaStream_t stream) {
  if (p.rows == 0) return;
  FRESCO_ASSERT(p.rows <= 0x7fffffff && p.cols == n, "softmax_rows: " + std::to_string(p.rows) + " rows");
  dispatch_float(p.dt, [&](auto tp) {
    softmax_rows_kernel<typename decltype(tp)::type>
        <<<unsigned(p.rows), kSoftmaxThreads, 0, stream>>>(s, ld_s, n, scale, p, lse, lse_stride);
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
