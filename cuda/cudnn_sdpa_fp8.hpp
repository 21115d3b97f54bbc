// cuDNN's fused FP8 flash attention (forward; Hopper and newer) for the CUDA backend's
// attention_fp8 (src/backend/backend.hpp), through the backend C API. cuDNN 9 has no FP8 form of
// its one-operation SDPA_FWD: its FP8 attention engine is found by matching an operation graph,
// the one cuDNN's own frontend builds for FP8 SDPA (docs/performance.md, "FP8 attention"):
//   S  = (Q Kᵀ) · attn_scale · dQ · dK                         matmul (f32) + 3 pointwise MUL
//   M  = rowmax S; E = exp(S − M); Z = rowsum E; P = E / Z     (statistics M + log Z)
//   amax_P = amax P; P8 = e4m3(P · sP)
//   O  = (P8 V) · dP · dV · sO;  amax_O = amax O               matmul (f32) + 3 pointwise MUL
// Q, K, V are e4m3 with one scale per tensor (d = the descale); sP = 448, dP = 1/448 (P ≤ 1);
// O is stored in 16 bits, so sO = 1. One plan per problem (lengths, heads, row stride of O,
// dtype, statistics), built the first time it is seen; the cuDNN handle is CudnnSdpa's.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "cuda/cudnn_sdpa.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kernels.hpp"

namespace fresco::cuda {

// q, k, v: dense e4m3 [L, H*D]; o: 16-bit [Lq, H*D] rows ld_o apart.
struct SdpaFp8Call {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  int64_t ld_o;
  int64_t Lq, Lk, H, D;
  bool bf16;       // o's dtype, else f16
  float* scalars;  // [kFp8ScalarCount] on the device (cuda/kernels.hpp, Fp8Scalar)
  float* lse;      // [Lq, H] f32 or null
};

class CudnnSdpaFp8 {
 public:
  explicit CudnnSdpaFp8(const CudnnSdpa& owner);
  ~CudnnSdpaFp8();
  CudnnSdpaFp8(const CudnnSdpaFp8&) = delete;
  CudnnSdpaFp8& operator=(const CudnnSdpaFp8&) = delete;

  // Whether cuDNN may serve FP8 attention here at all (its handle, a GPU of compute capability
  // 9.0 or newer); why() says why not.
  bool available() const { return available_; }
  const std::string& why() const { return why_; }
  // Whether the call's shapes and alignment fit (D % 16 == 0, D <= 256, 16-byte aligned rows).
  static bool eligible(const SdpaFp8Call& c);
  // Enqueues o (and lse) = FP8 attention; false when cuDNN declines this problem (why() keeps
  // the reason).
  bool run(const SdpaFp8Call& c, cudaStream_t stream);
  size_t planned() const { return plans_.size(); }

 private:
  struct Key {
    int64_t Lq, Lk, H, D, ld_o;
    bool bf16, stats;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan;
  std::unique_ptr<Plan> build(const Key& key);

  const CudnnSdpa& owner_;
  bool available_ = false;
  std::string why_;
  DeviceBuffer workspace_{"cuDNN FP8 attention workspace"};
  DeviceBuffer stats_{"cuDNN FP8 attention statistics"};
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace fresco::cuda
