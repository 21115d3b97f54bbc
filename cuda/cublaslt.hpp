// cuBLASLt for the CUDA backend's linear op: the checking macro, one move-only owner per
// cuBLASLt handle type, and LtGemm, which runs
//
//   D [M, N] (row-major, ld_d) = epilogue(X [M, K] (ld_x) · W [N, K]^T + bias [N])
//
// as the column-major product D^T = W · X^T (A = W transposed, B = X), so the bias runs along
// cuBLASLt's rows and the row strides of X and D are the layouts' leading dimensions. Compute
// type f32 (CUBLAS_COMPUTE_32F: no TF32 for f32 operands). With e4m3 operands (FP8, --dtype
// fp8) each product is scaled by two vectors, one f32 per output channel (W) and one per row of
// X (cuBLASLt's outer-vector scaling), and the product may be added to D (beta 1: the gated
// residual, the gate folded into W's scales and the bias by the caller). The algorithm is chosen once per
// problem (shape, dtypes, strides, epilogue, pointer alignments) by the heuristic and cached
// with its descriptors; one persistent workspace (32 MiB, as the cuBLAS docs advise on Hopper).
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "cuda/device_buffer.hpp"
#include "src/core/error.hpp"

// The one checking macro of the cuBLAS family: names the call, the status, file and line.
#define FRESCO_CUBLAS_CHECK(call)                                                               \
  do {                                                                                          \
    const cublasStatus_t fresco_cublas_rc_ = (call);                                            \
    if (fresco_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                             \
      throw ::fresco::ApiError(std::string("cuBLAS call failed: ") +                            \
                               cublasLtGetStatusName(fresco_cublas_rc_) + " (" +                \
                               cublasLtGetStatusString(fresco_cublas_rc_) + ") [" #call " at " + \
                               ::fresco::source_location(__FILE__, __LINE__) + "]");            \
  } while (0)

namespace fresco::cuda {

// A move-only owner of one cuBLASLt object, destroyed with `Destroy`.
template <typename H, cublasStatus_t (*Destroy)(H)>
class LtOwner {
 public:
  LtOwner() = default;
  explicit LtOwner(H h) : h_(h) {}
  ~LtOwner() {
    if (h_) Destroy(h_);
  }
  LtOwner(LtOwner&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  LtOwner& operator=(LtOwner&& o) noexcept {
    if (this != &o) {
      if (h_) Destroy(h_);
      h_ = o.h_;
      o.h_ = nullptr;
    }
    return *this;
  }
  LtOwner(const LtOwner&) = delete;
  LtOwner& operator=(const LtOwner&) = delete;
  H get() const { return h_; }

 private:
  H h_ = nullptr;
};

using LtHandle = LtOwner<cublasLtHandle_t, &cublasLtDestroy>;
using LtMatmulDesc = LtOwner<cublasLtMatmulDesc_t, &cublasLtMatmulDescDestroy>;
using LtLayout = LtOwner<cublasLtMatrixLayout_t, &cublasLtMatrixLayoutDestroy>;
using LtPreference = LtOwner<cublasLtMatmulPreference_t, &cublasLtMatmulPreferenceDestroy>;

enum class LtEpilogue : int { none, bias, gelu, gelu_bias };

struct GemmProblem {
  const void* x;
  int64_t ld_x;
  const void* w;  // [N, K] dense
  void* d;
  int64_t ld_d;
  int64_t M, N, K;
  cudaDataType_t ab_type;  // X and W
  cudaDataType_t d_type;
  LtEpilogue epilogue;
  const void* bias;  // [N] of d_type, for the bias epilogues
  // FP8 only (ab_type CUDA_R_8F_E4M3): D = w_scale[n] x_scale[m] (X W^T) (+ bias, epilogue).
  const float* w_scale = nullptr;  // [N]
  const float* x_scale = nullptr;  // [M]
  bool accumulate = false;         // D += the result (beta 1; D is also C)
};

class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Enqueues the product; false (nothing enqueued) when cuBLASLt offers no algorithm for it,
  // so the caller falls back to its own kernel.
  bool run(const GemmProblem& p, cudaStream_t stream);

  // Problems planned so far, and how many of them cuBLASLt declined.
  size_t planned() const { return plans_.size(); }
  size_t declined() const;

  static constexpr size_t kWorkspaceBytes = 32u << 20;

 private:
  struct Key {
    int64_t M, N, K, ld_x, ld_d;
    int ab, d, epilogue;
    bool accumulate;
    int align_x, align_w, align_d, align_bias;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan {
    bool ok = false;
    LtMatmulDesc desc;
    LtLayout a, b, d;
    cublasLtMatmulAlgo_t algo{};
    size_t workspace = 0;
  };
  std::unique_ptr<Plan> make_plan(const GemmProblem& p, const Key& key);

  LtHandle handle_;
  DeviceBuffer workspace_{"cuBLASLt workspace"};
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace fresco::cuda
