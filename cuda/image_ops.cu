// Decoder kernels (channel-major [C, H, W] tensors: C rows of H*W) and the 2-D transpose.
//  - conv2d: a direct convolution (stride 1, odd k <= 7), tiles of 16 output channels x 64
//    output pixels of one row per block (4 channels x 256 pixels where there are at most 4
//    output channels: the decoder's conv_out, 128 -> 3, which cuDNN's tensor-core algorithms
//    serve badly), 8 input channels staged in shared memory at a time. f32 activations, mixed
//    dtypes and outputs of few channels; bf16/f16 convolutions go through cuDNN
//    (cuda/conv_cudnn.hpp).
//  - group_sums: per-group sum and sum of squares in f64, in two deterministic passes (fixed
//    chunks per group, then a fixed-order reduction), so a replay gives the same bits.
//  - group_norm, upsample_nearest, transpose (32 x 32 tiles through shared memory).
#include <algorithm>
#include <type_traits>

#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

// ---- conv2d -----------------------------------------------------------------------------------

constexpr int kConvCi = 8, kConvThreads = 256;

// kConvPix output pixels of one row x kConvCo output channels per block; each thread one pixel
// and a quad of channels (kConvPix * kConvCo / 4 == kConvThreads).
template <typename Tx, typename Ty, int kConvPix, int kConvCo>
__global__ void __launch_bounds__(kConvThreads)
    conv2d_kernel(Mat x, int64_t H, int64_t W, Vec weight, int64_t Co, int k, Vec bias,
                  int pad_rows, Mat y, int64_t tiles_w) {
  static_assert(kConvPix * kConvCo / 4 == kConvThreads, "one pixel and a channel quad per thread");
  extern __shared__ float smem[];
  const int span = kConvPix + k - 1;
  float* s_in = smem;                            // [kConvCi][k][span]
  float* s_w = s_in + kConvCi * k * span;        // [kConvCo][kConvCi][k*k]
  const int64_t Ci = x.rows, i = blockIdx.x / tiles_w, j0 = (blockIdx.x % tiles_w) * kConvPix;
  const int64_t co0 = int64_t(blockIdx.y) * kConvCo;
  const int tx = threadIdx.x % kConvPix, ty = threadIdx.x / kConvPix;  // pixel, channel quad
  const int pad_cols = k / 2, kk = k * k;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t c0 = 0; c0 < Ci; c0 += kConvCi) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kConvCi * k * span; idx += blockDim.x) {
      const int cl = idx / (k * span), rem = idx - cl * k * span, a = rem / span, b = rem - a * span;
      const int64_t ci = c0 + cl, si = i + a - pad_rows, sj = j0 + b - pad_cols;
      float v = 0.0f;
      if (ci < Ci && si >= 0 && si < H && sj >= 0 && sj < W) v = to_f(*at<const Tx>(x, ci, si * W + sj));
      s_in[idx] = v;
    }
    for (int idx = threadIdx.x; idx < kConvCo * kConvCi * kk; idx += blockDim.x) {
      const int ol = idx / (kConvCi * kk), rem = idx - ol * kConvCi * kk, cl = rem / kk, t = rem - cl * kk;
      const int64_t co = co0 + ol, ci = c0 + cl;
      s_w[idx] = (co < Co && ci < Ci) ? load_dt(weight.data, weight.dt, (co * Ci + ci) * kk + t) : 0.0f;
    }
    __syncthreads();
    for (int cl = 0; cl < kConvCi; ++cl)
      for (int a = 0; a < k; ++a)
        for (int b = 0; b < k; ++b) {
          const float v = s_in[(cl * k + a) * span + tx + b];
#pragma unroll
          for (int o = 0; o < 4; ++o) acc[o] = fmaf(s_w[((ty * 4 + o) * kConvCi + cl) * kk + a * k + b], v, acc[o]);
        }
  }
  const int64_t j = j0 + tx;
  if (j >= W) return;
#pragma unroll
  for (int o = 0; o < 4; ++o) {
    const int64_t co = co0 + ty * 4 + o;
    if (co < Co) *at<Ty>(y, co, i * W + j) = from_f<Ty>(acc[o] + load_dt(bias.data, bias.dt, co));
  }
}

// ---- group statistics ---------------------------------------------------------------------------

constexpr int kSumThreads = 256;
constexpr int64_t kSumChunk = 16384;  // elements of a group per block of the first pass
constexpr int64_t kSumMaxChunks = 256;

int64_t sum_chunks(int64_t per_group) {
  return std::max<int64_t>(1, std::min(kSumMaxChunks, (per_group + kSumChunk - 1) / kSumChunk));
}

template <typename T>
__global__ void group_partial_kernel(Mat x, int64_t cpg, int64_t hw, int64_t chunks, double* partial) {
  __shared__ double shared[33];
  const int64_t g = blockIdx.y, p = blockIdx.x, n = cpg * hw;
  const int64_t per = (n + chunks - 1) / chunks, e0 = p * per, e1 = min(n, e0 + per);
  double s = 0.0, sq = 0.0;
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const int64_t c = e / hw;
    const double v = to_f(*at<const T>(x, g * cpg + c, e - c * hw));
    s += v;
    sq += v * v;
  }
  s = block_sum(s, shared);
  sq = block_sum(sq, shared);
  if (threadIdx.x == 0) {
    partial[(g * chunks + p) * 2] = s;
    partial[(g * chunks + p) * 2 + 1] = sq;
  }
}

__global__ void group_final_kernel(const double* partial, int64_t chunks, double* sums) {
  __shared__ double shared[33];
  const int64_t g = blockIdx.x;
  double s = 0.0, sq = 0.0;
  for (int64_t p = threadIdx.x; p < chunks; p += blockDim.x) {
    s += partial[(g * chunks + p) * 2];
    sq += partial[(g * chunks + p) * 2 + 1];
  }
  s = block_sum(s, shared);
  sq = block_sum(sq, shared);
  if (threadIdx.x == 0) {
    sums[2 * g] = s;
    sums[2 * g + 1] = sq;
  }
}

template <typename Tx, typename Ty>
__global__ void group_norm_kernel(Mat x, const double* sums, int64_t cpg, double count, float eps,
                                  Vec weight, Vec bias, Mat y) {
  const int64_t c = blockIdx.y, g = c / cpg;
  const double mean = sums[2 * g] / count;
  const double var = fmax(sums[2 * g + 1] / count - mean * mean, 0.0);
  const float scale = float(1.0 / sqrt(var + double(eps))) * load_dt(weight.data, weight.dt, c);
  const float shift = load_dt(bias.data, bias.dt, c) - float(mean) * scale;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < x.cols;
       i += int64_t(gridDim.x) * blockDim.x)
    *at<Ty>(y, c, i) = from_f<Ty>(to_f(*at<const Tx>(x, c, i)) * scale + shift);
}

// ---- upsample, transpose ------------------------------------------------------------------------

template <typename Tx, typename Ty>
__global__ void upsample_kernel(Mat x, int64_t W, Mat y) {
  const int64_t W2 = 2 * W;
  for (int64_t c = blockIdx.y; c < y.rows; c += gridDim.y)
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < y.cols;
         i += int64_t(gridDim.x) * blockDim.x) {
      const int64_t r = i / W2, q = i - r * W2;
      *at<Ty>(y, c, i) = from_f<Ty>(to_f(*at<const Tx>(x, c, (r / 2) * W + q / 2)));
    }
}

template <typename Tx, typename Ty>
__global__ void transpose_kernel(Mat x, Mat y) {
  __shared__ float tile[32][33];
  const int64_t A = x.rows, B = x.cols;
  for (int64_t a0 = int64_t(blockIdx.y) * 32; a0 < A; a0 += int64_t(gridDim.y) * 32) {
    const int64_t b0 = int64_t(blockIdx.x) * 32;
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t a = a0 + r, b = b0 + threadIdx.x;
      if (a < A && b < B) tile[r][threadIdx.x] = to_f(*at<const Tx>(x, a, b));
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t b = b0 + r, a = a0 + threadIdx.x;
      if (a < A && b < B) *at<Ty>(y, b, a) = from_f<Ty>(tile[threadIdx.x][r]);
    }
  }
}

}  // namespace

void conv2d(Mat x, int64_t H, int64_t W, Vec weight, int64_t Co, int64_t k, Vec bias, int pad_rows,
            Mat y, cudaStream_t stream) {
  FRESCO_ASSERT(k >= 1 && k % 2 == 1 && k <= kConvMaxKernel, "conv2d kernel size " + std::to_string(k));
  const int64_t Ho = H + 2 * pad_rows - (k - 1);
  if (Ho <= 0 || W == 0 || Co == 0) return;
  auto launch = [&](auto pix, auto co) {
    constexpr int kPix = decltype(pix)::value, kCo = decltype(co)::value;
    const int64_t tiles_w = (W + kPix - 1) / kPix;
    const dim3 grid(unsigned(Ho * tiles_w), unsigned((Co + kCo - 1) / kCo));
    const size_t smem = size_t(kConvCi * k * (kPix + k - 1) + kCo * kConvCi * k * k) * sizeof(float);
    dispatch_float(x.dt, [&](auto tx) {
      dispatch_float(y.dt, [&](auto ty) {
        conv2d_kernel<typename decltype(tx)::type, typename decltype(ty)::type, kPix, kCo>
            <<<grid, kConvThreads, smem, stream>>>(x, H, W, weight, Co, int(k), bias, pad_rows, y, tiles_w);
      });
    });
  };
  if (Co <= 4 && k <= 5)  // (k = 7 would need more than 48 KiB of shared memory at 256 pixels)
    launch(std::integral_constant<int, 256>{}, std::integral_constant<int, 4>{});
  else
    launch(std::integral_constant<int, 64>{}, std::integral_constant<int, 16>{});
  FRESCO_CUDA_LAUNCHED();
}

size_t group_sums_scratch(int64_t C, int64_t hw, int groups) {
  if (groups <= 0) return 0;
  return size_t(groups) * size_t(sum_chunks(C / groups * hw)) * 2;
}

void group_sums(Mat x, int groups, double* sums, double* partial, cudaStream_t stream) {
  if (groups <= 0) return;
  const int64_t cpg = x.rows / groups, hw = x.cols, chunks = sum_chunks(cpg * hw);
  dispatch_float(x.dt, [&](auto tx) {
    group_partial_kernel<typename decltype(tx)::type>
        <<<dim3(unsigned(chunks), unsigned(groups)), kSumThreads, 0, stream>>>(x, cpg, hw, chunks, partial);
  });
  FRESCO_CUDA_LAUNCHED();
  group_final_kernel<<<unsigned(groups), 256, 0, stream>>>(partial, chunks, sums);
  FRESCO_CUDA_LAUNCHED();
}

void group_norm(Mat x, const double* sums, int groups, double count, float eps, Vec weight, Vec bias,
                Mat y, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  const int64_t cpg = x.rows / groups;
  const dim3 grid(grid_for(x.cols, 256, 1024), unsigned(x.rows));
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      group_norm_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<grid, 256, 0, stream>>>(x, sums, cpg, count, eps, weight, bias, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void upsample_nearest(Mat x, int64_t H, int64_t W, Mat y, cudaStream_t stream) {
  (void)H;
  if (y.rows == 0 || y.cols == 0) return;
  const dim3 grid(grid_for(y.cols, 256, 1 << 16), unsigned(std::min<int64_t>(y.rows, 65535)));
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      upsample_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<grid, 256, 0, stream>>>(x, W, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void transpose(Mat x, Mat y, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  const dim3 grid(unsigned((x.cols + 31) / 32), unsigned(std::min<int64_t>((x.rows + 31) / 32, 65535)));
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      transpose_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<grid, dim3(32, 8), 0, stream>>>(x, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
