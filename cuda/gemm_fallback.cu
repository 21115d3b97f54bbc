// acc [M, N] = x [M, K] · w [N, K]^T in f32 for any float dtypes and row strides: a plain
// shared-memory tiled kernel (64 x 64 outputs per block, 4 x 4 per thread, K in steps of 16)
// for the shapes and alignments cuBLASLt declines. Not a fast path.
#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr int kTile = 64, kStep = 16, kThreads = 256;

__global__ void __launch_bounds__(kThreads) gemm_kernel(Mat x, Mat w, float* acc, int64_t ld_acc) {
  __shared__ float xs[kStep][kTile + 1];
  __shared__ float ws[kStep][kTile + 1];
  const int64_t M = x.rows, K = x.cols, N = w.rows;
  const int64_t m0 = int64_t(blockIdx.y) * kTile, n0 = int64_t(blockIdx.x) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float c[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kStep) {
    __syncthreads();
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int r = i / kStep, kk = i % kStep;
      const int64_t kg = k0 + kk;
      xs[kk][r] = (m0 + r < M && kg < K) ? load_dt(x.data, x.dt, (m0 + r) * x.ld + kg) : 0.0f;
      ws[kk][r] = (n0 + r < N && kg < K) ? load_dt(w.data, w.dt, (n0 + r) * w.ld + kg) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kStep; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[kk][ty * 4 + i];
        b[i] = ws[kk][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) c[i][j] = fmaf(a[i], b[j], c[i][j]);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < M && n < N) acc[m * ld_acc + n] = c[i][j];
    }
}

}  // namespace

void gemm_fallback(Mat x, Mat w, float* acc, int64_t ld_acc, cudaStream_t stream) {
  const int64_t M = x.rows, N = w.rows;
  if (M == 0 || N == 0) return;
  const dim3 grid(unsigned((N + kTile - 1) / kTile), unsigned((M + kTile - 1) / kTile));
  FRESCO_ASSERT(grid.y <= 65535, "gemm_fallback: too many rows " + std::to_string(M));
  gemm_kernel<<<grid, kThreads, 0, stream>>>(x, w, acc, ld_acc);
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
