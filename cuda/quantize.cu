// FP8 kernels: per-row scaled e4m3 (the CPU reference: src/backend/cpu_quantize.cpp), for the
// FP8 communication and the FP8 linears' operands. One block per row: the row's absolute
// maximum, then the scaled conversion with the hardware's round-to-nearest-even, saturating cvt
// (the CPU rounds the same way, so both give the same bytes). Rows of 16-bit values up to 16384
// wide are read once, 16 bytes per access, and kept in registers between the two phases; other
// rows are read twice, an element per thread.
#include <cuda_fp8.h>

#include <algorithm>
#include <type_traits>

#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr int kQuantizeThreads = 256;

constexpr int kRegisterChunks = 8;  // chunks of 8 values per thread: rows up to 256 * 64 = 16384

// The row is held in registers as its raw 16-bit words (16 bytes per chunk of 8), not widened to
// f32: half the registers, so more blocks per SM keep loads in flight. On an H100 this took the
// [4608, 15360] rows of FLUX's single blocks from 1.8 to 2.7 TB/s, the speed of a plain copy of
// the same bytes (scripts/probes/quantize_probe.cu, docs/performance.md).
template <typename T>
__global__ void quantize_rows_vec_kernel(Mat x, Mat q, float* scales) {
  __shared__ float partial[33];
  const int64_t r = blockIdx.x, chunks = x.cols / 8;
  const uint4* in = reinterpret_cast<const uint4*>(at<const T>(x, r, 0));
  uint4 raw[kRegisterChunks];
#pragma unroll
  for (int j = 0; j < kRegisterChunks; ++j) {
    const int64_t c8 = threadIdx.x + int64_t(j) * blockDim.x;
    if (c8 < chunks) raw[j] = in[c8];
  }
  float amax = 0;
#pragma unroll
  for (int j = 0; j < kRegisterChunks; ++j) {
    const int64_t c8 = threadIdx.x + int64_t(j) * blockDim.x;
    if (c8 < chunks) {
      float v[8];
      unpack8<T>(raw[j], v);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(v[e]));
    }
  }
  const float scale = e4m3_scale_of(block_max(amax, partial));
  if (threadIdx.x == 0) scales[r] = scale;
  auto* out = at<__nv_fp8_storage_t>(q, r, 0);
#pragma unroll
  for (int j = 0; j < kRegisterChunks; ++j) {
    const int64_t c8 = threadIdx.x + int64_t(j) * blockDim.x;
    if (c8 < chunks) {
      float v[8];
      unpack8<T>(raw[j], v);
      *reinterpret_cast<uint2*>(out + c8 * 8) = to_e4m3x8(v, scale);
    }
  }
}

// Threads per block for rows of `chunks` chunks of 8: about 4 chunks per thread (a warp
// multiple, 64 to kQuantizeThreads), so that narrow rows (FLUX's 3072) do not leave most of a
// 256-thread block idle (1.4 -> 1.8 TB/s at [4096, 3072] on an H100, the probe above).
int quantize_threads(int64_t chunks) {
  const int64_t per_four = ((chunks + 3) / 4 + 31) / 32 * 32;
  return int(std::min<int64_t>(kQuantizeThreads, std::max<int64_t>(64, per_four)));
}

template <typename Tb>
__global__ void fold_gate_kernel(const float* w_scale, Vec gate, Vec bias, int64_t n, float* scale_out, Tb* bias_out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = load_dt(gate.data, gate.dt, i);
    scale_out[i] = w_scale[i] * g;
    if (bias_out) bias_out[i] = from_f<Tb>(g * load_dt(bias.data, bias.dt, i));
  }
}

template <typename T>
__global__ void quantize_rows_kernel(Mat x, Mat q, float* scales) {
  __shared__ float partial[33];
  const int64_t r = blockIdx.x;
  float amax = 0;
  for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) amax = fmaxf(amax, fabsf(to_f(*at<const T>(x, r, c))));
  const float scale = e4m3_scale_of(block_max(amax, partial));
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

// FP8 attention's operands, one scale per tensor (backend.hpp, attention_fp8), in two passes:
// the tensor's absolute maximum (a warp's maximum folded into *amax_bits by atomicMax on the
// float's bits, which order like the values for non-negative floats), then the conversion with
// the scale e4m3_scale_of(amax), which the first block also stores as the descale.
template <typename T>
__global__ void tensor_amax_kernel(Mat x, unsigned* amax_bits) {
  const int64_t chunks_per_row = x.cols / 8, chunks = x.rows * chunks_per_row;
  float amax = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / chunks_per_row, c8 = i - r * chunks_per_row;
    float v[8];
    unpack8<T>(*reinterpret_cast<const uint4*>(at<const T>(x, r, c8 * 8)), v);
#pragma unroll
    for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(v[e]));
  }
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) atomicMax(amax_bits, __float_as_uint(amax));
}

template <typename T>
__global__ void quantize_tensor_kernel(Mat x, const unsigned* amax_bits, uint8_t* q, float* descale) {
  const float scale = e4m3_scale_of(__uint_as_float(*amax_bits));
  if (blockIdx.x == 0 && threadIdx.x == 0) *descale = scale;
  const int64_t chunks_per_row = x.cols / 8, chunks = x.rows * chunks_per_row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / chunks_per_row, c8 = i - r * chunks_per_row;
    float v[8];
    unpack8<T>(*reinterpret_cast<const uint4*>(at<const T>(x, r, c8 * 8)), v);
    *reinterpret_cast<uint2*>(q + r * x.cols + c8 * 8) = to_e4m3x8(v, scale);
  }
}

__global__ void attention_fp8_prologue_kernel(float* scalars, unsigned* amax_bits) {
  if (threadIdx.x < 3) amax_bits[threadIdx.x] = 0;
  if (threadIdx.x == 0) {
    scalars[kDescaleP] = 1.0f / 448.0f;
    scalars[kScaleP] = 448.0f;
    scalars[kScaleO] = 1.0f;
  }
}

unsigned grid_for_chunks(int64_t chunks) { return unsigned(std::min<int64_t>((chunks + 255) / 256, 132 * 16)); }

}  // namespace

void tensor_amax(Mat x, unsigned* amax_bits, cudaStream_t stream) {
  FRESCO_ASSERT(x.dt != kF32 && vector_ok(x, 8), "tensor_amax: needs 16-bit rows of 8-value aligned chunks");
  if (x.rows * x.cols == 0) return;
  dispatch_float(x.dt, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (!std::is_same_v<T, float>)
      tensor_amax_kernel<T><<<grid_for_chunks(x.rows * x.cols / 8), 256, 0, stream>>>(x, amax_bits);
  });
  FRESCO_CUDA_LAUNCHED();
}

void quantize_tensor(Mat x, const unsigned* amax_bits, uint8_t* q, float* descale, cudaStream_t stream) {
  FRESCO_ASSERT(x.dt != kF32 && vector_ok(x, 8) && reinterpret_cast<uintptr_t>(q) % 8 == 0,
                "quantize_tensor: needs 16-bit rows of 8-value aligned chunks");
  const int64_t chunks = std::max<int64_t>(x.rows * x.cols / 8, 1);
  dispatch_float(x.dt, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (!std::is_same_v<T, float>)
      quantize_tensor_kernel<T><<<grid_for_chunks(chunks), 256, 0, stream>>>(x, amax_bits, q, descale);
  });
  FRESCO_CUDA_LAUNCHED();
}

void attention_fp8_prologue(float* scalars, unsigned* amax_bits, cudaStream_t stream) {
  attention_fp8_prologue_kernel<<<1, 32, 0, stream>>>(scalars, amax_bits);
  FRESCO_CUDA_LAUNCHED();
}

void quantize_rows(Mat x, Mat q, float* scales, cudaStream_t stream) {
  if (x.rows == 0) return;
  FRESCO_ASSERT(x.rows <= 0x7fffffff, "quantize_rows: too many rows");
  const bool q_words = reinterpret_cast<uintptr_t>(q.data) % 8 == 0 && (x.rows <= 1 || q.ld % 8 == 0);
  if (x.dt != kF32 && vector_ok(x, 8) && q_words && x.cols <= int64_t(kQuantizeThreads) * 8 * kRegisterChunks) {
    dispatch_float(x.dt, [&](auto t) {
      using T = typename decltype(t)::type;
      if constexpr (!std::is_same_v<T, float>)
        quantize_rows_vec_kernel<T><<<unsigned(x.rows), quantize_threads(x.cols / 8), 0, stream>>>(x, q, scales);
    });
    FRESCO_CUDA_LAUNCHED();
    return;
  }
  dispatch_float(x.dt, [&](auto t) {
    quantize_rows_kernel<typename decltype(t)::type><<<unsigned(x.rows), kQuantizeThreads, 0, stream>>>(x, q, scales);
  });
  FRESCO_CUDA_LAUNCHED();
}

void fold_gate(const float* w_scale, Vec gate, Vec bias, int64_t n, float* scale_out, void* bias_out, int bias_dt,
               cudaStream_t stream) {
  if (n == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>((n + 255) / 256, 1024));
  dispatch_float(bias_dt, [&](auto t) {
    using Tb = typename decltype(t)::type;
    fold_gate_kernel<Tb><<<blocks, 256, 0, stream>>>(w_scale, gate, bias, n, scale_out, static_cast<Tb*>(bias_out));
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
