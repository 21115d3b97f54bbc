// A stand-alone probe for docs/performance.md (issue 26): why quantize_rows (the FP8 token
// linears' per-token e4m3 quantization, one block per row) runs at ~1.3 TB/s on an H100, on the
// shapes of FLUX.1-dev at 1024². Variants, each timed (CUDA events, median of 20 after warm-up)
// and checked bit for bit against the first:
//   f32regs/div   the kernel of cuda/quantize.cu: the row in f32 registers (8 chunks of 8 per
//                 thread), amax by a block reduction, each value divided by the scale;
//   bf16regs/div  the row kept as raw bf16 in registers (half the registers: more blocks per SM);
//   bf16regs/mul  the same, multiplying by 448/amax instead of dividing by amax/448 (NOT the same
//                 bits in general: reported as the count of differing bytes);
//   sized/div     bf16 registers, threads per block sized to the row (about 4 chunks per thread);
// and a copy kernel (read the bf16 row, write one byte per value) as the bandwidth ceiling.
// Build: nvcc -O3 -arch=sm_90a quantize_probe.cu -o quantize_probe
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)

constexpr int kChunks = 8;  // chunks of 8 values per thread (rows up to threads * 64)

__device__ float block_max(float v, float* partial) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = (blockDim.x + 31) / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? partial[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) partial[32] = v;
  }
  __syncthreads();
  return partial[32];
}

__device__ __forceinline__ void unpack8(uint4 raw, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

template <bool kMultiply>
__device__ __forceinline__ uint2 e4m3x8(const float (&v)[8], float scale, float inverse) {
  union { uint2 word; __nv_fp8_storage_t b[8]; } pack;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    pack.b[e] = __nv_cvt_float_to_fp8(kMultiply ? v[e] * inverse : __fdiv_rn(v[e], scale), __NV_SATFINITE, __NV_E4M3);
  return pack.word;
}

__global__ void f32regs_div(const __nv_bfloat16* x, int64_t cols, uint8_t* q, float* scales) {
  __shared__ float partial[33];
  const int64_t r = blockIdx.x, chunks = cols / 8;
  const uint4* in = reinterpret_cast<const uint4*>(x + r * cols);
  float v[kChunks][8];
  float amax = 0;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = threadIdx.x + int64_t(j) * blockDim.x;
    if (c < chunks) {
      unpack8(in[c], v[j]);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(v[j][e]));
    }
  }
  amax = block_max(amax, partial);
  const float scale = amax > 0 ? __fdiv_rn(amax, 448.f) : 1.f;
  if (threadIdx.x == 0) scales[r] = scale;
  uint2* out = reinterpret_cast<uint2*>(q + r * cols);
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = threadIdx.x + int64_t(j) * blockDim.x;
    if (c < chunks) out[c] = e4m3x8<false>(v[j], scale, 0.f);
  }
}

template <bool kMultiply>
__global__ void bf16regs(const __nv_bfloat16* x, int64_t cols, uint8_t* q, float* scales) {
  __shared__ float partial[33];
  const int64_t r = blockIdx.x, chunks = cols / 8;
  const uint4* in = reinterpret_cast<const uint4*>(x + r * cols);
  uint4 raw[kChunks];
  float amax = 0;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = threadIdx.x + int64_t(j) * blockDim.x;
    if (c < chunks) raw[j] = in[c];
  }
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = threadIdx.x + int64_t(j) * blockDim.x;
    if (c < chunks) {
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw[j]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const __nv_bfloat162 a = __habs2(h[i]);
        amax = fmaxf(amax, fmaxf(__low2float(a), __high2float(a)));
      }
    }
  }
  amax = block_max(amax, partial);
  const float scale = amax > 0 ? __fdiv_rn(amax, 448.f) : 1.f;
  const float inverse = amax > 0 ? __fdiv_rn(448.f, amax) : 1.f;
  if (threadIdx.x == 0) scales[r] = scale;
  uint2* out = reinterpret_cast<uint2*>(q + r * cols);
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = threadIdx.x + int64_t(j) * blockDim.x;
    if (c < chunks) {
      float v[8];
      unpack8(raw[j], v);
      out[c] = e4m3x8<kMultiply>(v, scale, inverse);
    }
  }
}

__global__ void copy_bytes(const __nv_bfloat16* x, int64_t cols, uint8_t* q, float* scales) {
  const int64_t r = blockIdx.x, chunks = cols / 8;
  const uint4* in = reinterpret_cast<const uint4*>(x + r * cols);
  uint2* out = reinterpret_cast<uint2*>(q + r * cols);
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    const uint4 v = in[c];
    out[c] = make_uint2(v.x ^ v.y, v.z ^ v.w);
  }
  if (threadIdx.x == 0) scales[r] = 1.f;
}

using Kernel = void (*)(const __nv_bfloat16*, int64_t, uint8_t*, float*);

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("GPU %s\n", prop.name);
  const int64_t shapes[][3] = {{4608, 15360, 38}, {4096, 12288, 19}, {4096, 3072, 19}, {512, 12288, 19},
                               {512, 3072, 19}};  // rows, cols, calls per 1024² step
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double total[5] = {0, 0, 0, 0, 0};
  for (auto& s : shapes) {
    const int64_t R = s[0], C = s[1], n = R * C;
    std::vector<__nv_bfloat16> h(static_cast<size_t>(n));
    uint32_t state = 12345;
    for (auto& v : h) {  // values of a GELU / attention output: mostly small, a few large
      state = state * 1664525u + 1013904223u;
      const float u = float(state >> 8) / 16777216.f - 0.5f;
      v = __float2bfloat16(u * ((state & 1023) == 0 ? 40.f : 2.f));
    }
    __nv_bfloat16* dx;
    uint8_t *dq, *dq0;
    float *ds, *ds0;
    CK(cudaMalloc(&dx, n * 2)); CK(cudaMalloc(&dq, n)); CK(cudaMalloc(&dq0, n));
    CK(cudaMalloc(&ds, R * 4)); CK(cudaMalloc(&ds0, R * 4));
    CK(cudaMemcpy(dx, h.data(), n * 2, cudaMemcpyHostToDevice));
    const int64_t chunks = C / 8;
    const int sized = int(std::min<int64_t>(256, std::max<int64_t>(64, ((chunks + 3) / 4 + 31) / 32 * 32)));
    struct V { const char* name; Kernel k; int threads; } vs[] = {
        {"f32regs/div", f32regs_div, 256}, {"bf16regs/div", bf16regs<false>, 256},
        {"bf16regs/mul", bf16regs<true>, 256}, {"sized/div", bf16regs<false>, sized}, {"copy", copy_bytes, 256}};
    std::vector<uint8_t> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    int vi = 0;
    for (auto& v : vs) {
      if (int64_t(v.threads) * 8 * kChunks < C) { printf("  %s: row too wide\n", v.name); ++vi; continue; }
      v.k<<<unsigned(R), v.threads>>>(dx, C, vi == 0 ? dq0 : dq, vi == 0 ? ds0 : ds);
      CK(cudaDeviceSynchronize());
      long differ = 0;
      if (vi > 0 && vi < 4) {
        CK(cudaMemcpy(ref.data(), dq0, n, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(got.data(), dq, n, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; ++i) differ += ref[size_t(i)] != got[size_t(i)];
      }
      for (int w = 0; w < 5; ++w) v.k<<<unsigned(R), v.threads>>>(dx, C, dq, ds);
      std::vector<float> ms;
      for (int t = 0; t < 20; ++t) {
        cudaEventRecord(e0);
        v.k<<<unsigned(R), v.threads>>>(dx, C, dq, ds);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float m;
        cudaEventElapsedTime(&m, e0, e1);
        ms.push_back(m);
      }
      std::sort(ms.begin(), ms.end());
      const double med = ms[10];
      total[vi] += med * double(s[2]);
      printf("%5ld x %5ld %-13s threads %3d: %7.4f ms %5.2f TB/s  differing bytes %ld\n", R, C, v.name, v.threads, med,
             3.0 * double(n) / med / 1e9, differ);
      ++vi;
    }
    cudaFree(dx); cudaFree(dq); cudaFree(dq0); cudaFree(ds); cudaFree(ds0);
  }
  printf("per 1024² step (calls weighted): f32regs/div %.2f ms, bf16regs/div %.2f, bf16regs/mul %.2f, sized/div %.2f, copy %.2f\n",
         total[0], total[1], total[2], total[3], total[4]);
  return 0;
}
