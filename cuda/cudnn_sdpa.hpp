// cuDNN's fused scaled-dot-product attention (forward) through the backend C API, for the CUDA
// backend's attention op: the checking macro, move-only owners of the cuDNN handle and backend
// descriptors, and CudnnSdpa, which builds one execution plan per problem (sequence lengths,
// heads, head dim, dtype, row strides) the first time it is seen, keeps every descriptor of it
// alive, and executes it on the backend's stream. The variant pack (the data pointers) is
// rebuilt only when the pointers change, so a repeated call costs no descriptor work.
//
// Layout (../shared/design/gpu-libraries.md §0, §1.4, verified on cuDNN 9.14 / H100):
// q, k, v, o are [B=1, H, S, D] views of the token-major [S, H*D] rows with strides
// {S*ld, D, ld, 1} (ld = the tensor's row stride, so q/k/v are read in place from the fused
// qkv rows and o is written into its strided destination); the softmax statistics are
// [1, H, Sq, 1] f32 (head-major) and are transposed into the op's lse [Sq, H]. The scale is a
// by-value f32. Needs cuDNN >= 9.13 (the SDPA_FWD operation), bf16 or f16, D % 8 == 0,
// D <= 256, 16-byte aligned pointers and strides.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/device_buffer.hpp"
#include "src/core/error.hpp"

namespace fresco::cuda::detail {
std::string cudnn_failure(cudnnStatus_t status, const char* call, const char* file, int line);
}

// The one checking macro of the cuDNN family: names the call, the status, cuDNN's last error
// message, file and line.
#define FRESCO_CUDNN_CHECK(call)                                                                \
  do {                                                                                          \
    const cudnnStatus_t fresco_cudnn_rc_ = (call);                                              \
    if (fresco_cudnn_rc_ != CUDNN_STATUS_SUCCESS)                                               \
      throw ::fresco::ApiError(                                                                 \
          ::fresco::cuda::detail::cudnn_failure(fresco_cudnn_rc_, #call, __FILE__, __LINE__));  \
  } while (0)

namespace fresco::cuda {

class CudnnHandle {
 public:
  CudnnHandle();
  ~CudnnHandle();
  CudnnHandle(CudnnHandle&& o) noexcept;
  CudnnHandle& operator=(CudnnHandle&& o) noexcept;
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return h_; }

 private:
  cudnnHandle_t h_ = nullptr;
};

// One cudnnBackendDescriptor_t.
class CudnnDescriptor {
 public:
  explicit CudnnDescriptor(cudnnBackendDescriptorType_t type);
  ~CudnnDescriptor();
  CudnnDescriptor(CudnnDescriptor&& o) noexcept;
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept;
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const void* values);
  void set_descriptor(cudnnBackendAttributeName_t name, const CudnnDescriptor& value);
  void finalize();

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// How a tensor of an operation graph is passed: device memory, a host scalar read at execution
// (by value), or an intermediate that lives only inside the fused kernel (virtual).
enum class TensorKind { data, by_value, intermediate };
// A finalized 4-D tensor descriptor, 16-byte aligned.
CudnnDescriptor cudnn_tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims,
                             std::array<int64_t, 4> strides, TensorKind kind = TensorKind::data);
// An execution plan of the operation graph of `ops`: the first engine configuration of cuDNN's
// heuristics (mode A) that finalizes. The graph, heuristics and configurations are moved into
// `keep` (the plan refers to them); ApiError naming each configuration's failure when none does.
// FNV-1a over a plan key's values (the plan caches' hash).
size_t hash_key_values(std::initializer_list<int64_t> values);

struct CudnnPlan {
  std::unique_ptr<CudnnDescriptor> plan;
  int64_t workspace = 0;
};
CudnnPlan cudnn_first_plan(cudnnHandle_t h, const std::vector<const CudnnDescriptor*>& ops,
                           std::vector<CudnnDescriptor>& keep);

struct SdpaCall {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  int64_t ld_q, ld_k, ld_v, ld_o;  // row strides (elements)
  int64_t Lq, Lk, H, D;
  bool bf16;     // else f16
  float* lse;    // [Lq, H] f32 or null
};

class CudnnSdpa {
 public:
  CudnnSdpa();  // never throws: when cuDNN cannot serve, available() is false and why() says why
  ~CudnnSdpa();
  CudnnSdpa(const CudnnSdpa&) = delete;
  CudnnSdpa& operator=(const CudnnSdpa&) = delete;

  bool available() const { return handle_ != nullptr; }
  // The cuDNN handle (owned here; null when unavailable), for the FP8 attention beside it.
  cudnnHandle_t handle() const { return handle_ ? handle_->get() : nullptr; }
  const std::string& why() const { return why_; }
  int version() const { return version_; }

  // Whether the call's dtype, head dim, strides and alignment fit cuDNN's SDPA at all.
  static bool eligible(const SdpaCall& c);
  // Enqueues o (and lse) = SDPA(q, k, v); false when cuDNN declines this problem (no engine
  // finalized: the reason is kept in why()), so the caller runs its own kernel.
  bool run(const SdpaCall& c, cudaStream_t stream);

  size_t planned() const { return plans_.size(); }
  size_t declined() const;

  // Replays each (plan, pointers) execution from a CUDA graph captured on its first use instead
  // of calling cudnnBackendExecute (not inside an outer capture, which records the call anyway).
  // (cudnnBackendExecute allocates host memory on every call, the graph launch does not.)
  void set_graph_replay(bool on) { graph_replay_ = on; }
  bool graph_replay() const { return graph_replay_; }
  const std::string& graph_note() const { return graph_note_; }

 private:
  struct Key {
    int64_t Lq, Lk, H, D, ld_q, ld_k, ld_v, ld_o;
    bool bf16;
    bool stats;  // the graph writes the softmax statistics (needed for lse); else inference form
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan;
  std::unique_ptr<Plan> build(const Key& key);
  bool run_key(const SdpaCall& c, const Key& key, cudaStream_t stream);
  bool force_stats_ = false;  // FRESCO_CUDNN_STATS=1: always the form with statistics

  std::unique_ptr<CudnnHandle> handle_;
  cudaStream_t stream_ = nullptr;
  std::string why_;
  std::string graph_note_;
  bool graph_replay_ = false;
  int version_ = 0;
  DeviceBuffer workspace_{"cuDNN SDPA workspace"};
  DeviceBuffer stats_{"cuDNN SDPA statistics"};
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace fresco::cuda
