// cuDNN convolutions for the decoder's conv2d op (3x3 and 1x1, stride 1), through cuDNN's
// convolution API (cudnnConvolutionForward, present in cuDNN 9 beside the graph API; simpler
// than a raw-API graph for a plain forward convolution and served by the same engines).
//
// Layout: the op's channel-major tensors are NCHW with N = 1 (x: Ci rows of H*W, y: Co rows of
// Ho*W, each row `ld` elements apart); weights [Co, Ci, k, k] dense; bf16 or f16 data with f32
// accumulation on tensor cores (CUDNN_TENSOR_OP_MATH; f32 activations keep the direct kernel,
// which computes in exact f32). Padding: rows by pad_rows, columns by k/2.
//
// The bias: y is first filled with bias[c] and the convolution accumulates onto it (beta = 1),
// so y = conv(x, w) + b is computed in f32 and rounded once.
//
// Plans: the descriptors and the algorithm (cuDNN's heuristic, first candidate whose workspace
// fits under workspace_limit(); FRESCO_CUDNN_CONV_FIND=1 times every candidate once instead)
// are built the first time a shape is seen and kept; one persistent workspace grows to the
// largest plan's need. An algorithm whose first launch cuDNN refuses is dropped for the next.
//
// cuDNN's convolution descriptors and kernels use 32-bit element offsets: a tensor whose
// channels span more than 2^31 - 1 elements (256 channels at 4096^2) is convolved in channel
// chunks: output chunks independently, input chunks accumulated onto y (beta = 1). Input
// chunks round each partial sum to the activation dtype (a second rounding, only at such sizes).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "cuda/cudnn_sdpa.hpp"  // CudnnHandle, FRESCO_CUDNN_CHECK
#include "cuda/device_buffer.hpp"
#include "cuda/kernels.hpp"

namespace fresco::cuda {

struct ConvCall {
  Mat x;         // Ci rows of H*W
  int64_t H, W;  // x's image rows and columns
  Vec weight;    // [Co, Ci, k, k] dense, x's dtype
  Vec bias;      // [Co], any float dtype
  int64_t Co, k;
  int pad_rows;
  Mat y;  // Co rows of Ho*W, Ho = H + 2 pad_rows - (k - 1); x's dtype
};

class CudnnConv {
 public:
  CudnnConv();  // never throws: when cuDNN cannot serve, available() is false and why() says why
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  bool available() const { return handle_ != nullptr; }
  const std::string& why() const { return why_; }

  // Whether the call's dtypes and sizes fit cuDNN here at all.
  static bool eligible(const ConvCall& c);
  // Enqueues y = conv(x, w) + b; false when cuDNN declines (no plan for a chunk's shape, found
  // before anything is enqueued), so the caller runs its own kernel.
  bool run(const ConvCall& c, cudaStream_t stream);

  size_t planned() const { return plans_.size(); }
  size_t declined() const;
  // "Ci->Co HxW kK: algo A (ws B)" for each plan, for FRESCO_CUDA_VERBOSE.
  std::string describe() const;
  static size_t workspace_limit();

 private:
  struct Key {
    int64_t Ci, H, W, Co, k, pad_rows, ld_x, ld_y;
    int dt;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan;
  Plan& plan_for(const Key& key, const void* x, const void* w, void* y, cudaStream_t stream);
  void build(Plan& p, const Key& key, const void* x, const void* w, void* y, cudaStream_t stream);

  std::unique_ptr<CudnnHandle> handle_;
  cudaStream_t stream_ = nullptr;
  std::string why_;
  bool find_ = false;  // FRESCO_CUDNN_CONV_FIND=1: time the candidates instead of the heuristic's order
  DeviceBuffer workspace_{"cuDNN convolution workspace"};
  DeviceBuffer weight_slice_{"cuDNN convolution weight slice"};
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace fresco::cuda
