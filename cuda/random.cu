// fill_random on the device: the counter-based normal numbers of src/backend/random.hpp.
// Philox4x32-10 is integer arithmetic, so every block's bits equal Random123's on the host;
// the uniform conversions and products are written with explicitly rounded intrinsics (no
// contraction into FMAs), so only logf and sinf (a few ulps from glibc's) separate a device
// value from the CPU reference's.
#include "cuda/kernels_common.cuh"

namespace fresco::cuda {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;  // Random123's multipliers
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // Weyl key increments

struct U4 {
  uint32_t x, y, z, w;
};

// Philox4x32 with 10 rounds (Salmon et al. 2011; Random123's philox4x32_R(10, ...)).
__device__ __forceinline__ U4 philox4x32_10(U4 ctr, uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint32_t hi0 = __umulhi(kPhiloxM0, ctr.x), lo0 = kPhiloxM0 * ctr.x;
    const uint32_t hi1 = __umulhi(kPhiloxM1, ctr.z), lo1 = kPhiloxM1 * ctr.z;
    ctr = {hi1 ^ ctr.y ^ k0, lo1, hi0 ^ ctr.w ^ k1, lo0};
  }
  return ctr;
}

// r123::boxmuller(u0, u1).x: sin(pi * uneg11(u0)) * sqrt(-2 log(u01(u1))).
__device__ __forceinline__ float boxmuller_x(uint32_t u0, uint32_t u1) {
  const float uneg11 = __fadd_rn(__fmul_rn(__int2float_rn(int32_t(u0)), 4.656612873077392578125e-10f),  // 2^-31
                                 2.3283064365386962890625e-10f);                                       // 2^-32
  const float u01 = __fadd_rn(__fmul_rn(__uint2float_rn(u1), 2.3283064365386962890625e-10f),  // 2^-32
                              1.16415321826934814453125e-10f);                                 // 2^-33
  const float s = sinf(__fmul_rn(3.1415926535897932f, uneg11));
  const float r = sqrtf(__fmul_rn(-2.0f, logf(u01)));
  return __fmul_rn(s, r);
}

template <typename T>
__global__ void fill_random_kernel(T* y, int64_t n, uint32_t k0, uint32_t k1, uint32_t stream,
                                   uint32_t substream, float mean, float std) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = mean;
    if (std != 0.0f) {
      const U4 r = philox4x32_10({uint32_t(i), uint32_t(uint64_t(i) >> 32), substream, stream}, k0, k1);
      v = __fadd_rn(mean, __fmul_rn(std, boxmuller_x(r.x, r.y)));
    }
    y[i] = from_f<T>(v);
  }
}

}  // namespace

void fill_random(uint64_t seed, uint32_t stream_id, uint32_t substream, float mean, float std, void* y,
                 int dt, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreadsPerBlock = 256;
  dispatch_float(dt, [&](auto t) {
    using T = typename decltype(t)::type;
    fill_random_kernel<T><<<grid_for(n, kThreadsPerBlock), kThreadsPerBlock, 0, stream>>>(
        static_cast<T*>(y), n, uint32_t(seed), uint32_t(seed >> 32), stream_id, substream, mean, std);
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
