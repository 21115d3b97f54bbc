// cuDNN convolutions for the decoder's conv2d op (3x3 and 1x1, stride 1), through cuDNN's
// convolution API (cudnnConvolutionForward, present in cuDNN 9 beside the graph API; simpler
// than a raw-API graph for a plain forward convolution and served by the same engines).
//
// Layout: the op's channel-major tensors are NCHW with N = 1 (x: Ci rows of H*W, y: Co rows of
// Ho*W, each row `ld` elements apart); weights [Co, Ci, k, k] dense; bf16 or f16 data with f32
// accumulation on tensor cores (CUDNN_TENSOR_OP_MATH; f32 activations keep the direct kernel,
// which computes in exact f32, and so do outputs of fewer than 8 channels: cuDNN's heuristic
// ran the decoder's conv_out, 128 -> 3, at 0.7 TFLOP/s). Padding: rows by pad_rows, columns by k/2.
//
// The bias: y is first filled with bias[c] and the convolution accumulates onto it (beta = 1),
// so y = conv(x, w) + b is computed in f32 and rounded once.
//
// Plans: the descriptors and the algorithm (cuDNN's heuristic, first candidate whose workspace
// fits under workspace_limit(); FRESCO_CUDNN_CONV_FIND=1 times every candidate once instead)
// are built the first time a shape is seen and kept; one persistent workspace grows to the
// largest plan's need. An algorithm whose first launch cuDNN refuses is dropped for the next.
//
// Chunks. cuDNN's fast algorithm for NCHW bf16 (implicit_precomp_gemm on Hopper) needs a
// workspace of about the input plus the output (it runs on NHWC copies); above the workspace
// limit the heuristic falls to implicit_gemm without workspace, measured at 29 TFLOP/s against
// 418 on an H200. So a large convolution runs as bands of output rows whose workspace fits:
// interior bands exactly (pad 0 on their input rows plus halo), the top and bottom bands with
// cuDNN's symmetric padding, each writing pad_rows wrong rows into its neighbour band, which is
// computed after it (order: top, bottom, interiors; every band rewrites its rows' bias first).
// And cuDNN's descriptors use 32-bit element offsets: a tensor whose channels span more than
// 2^31 - 1 elements (256 channels at 4096^2) is convolved in channel chunks: output chunks
// independently, input chunks accumulated onto y (beta = 1), which rounds each partial sum to
// the activation dtype (a second rounding, only at such sizes).
//
// cudnnConvolutionForward allocates host memory on every call; each call (shape, pointers) is
// therefore also captured once as a CUDA graph and replayed from its second call on (not
// inside an outer capture; FRESCO_CUDNN_GRAPH=0 turns it off).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/cuda_stream.hpp"  // CudaGraphExec
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
  size_t replays() const { return graphs_.size(); }
  const std::string& graph_note() const { return graph_note_; }
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
  // One cuDNN convolution of a call: a channel chunk and a band of rows (offsets in elements).
  struct Step {
    Plan* plan;
    int64_t ci0, nci, co0, nco;
    int64_t in_row0, out_row0, out_rows;  // the band's first input row, first and number of rows written
  };
  // A call shape's steps in order, and the weight slice they need.
  struct Schedule {
    bool ok = false;
    std::vector<Step> steps;
    size_t slice = 0;
  };
  // A call: its shape and its pointers (a captured graph replays exactly these).
  struct CallKey {
    Key shape;
    const void* x;
    const void* w;
    const void* b;
    void* y;
    int bias_dt;
    bool operator==(const CallKey&) const = default;
  };
  struct CallKeyHash {
    size_t operator()(const CallKey& k) const;
  };
  Plan& plan_for(const Key& key, const void* x, const void* w, void* y, cudaStream_t stream);
  void build(Plan& p, const Key& key, const void* x, const void* w, void* y, cudaStream_t stream);
  Schedule& schedule_for(const ConvCall& c, const Key& shape, cudaStream_t stream);
  // Enqueues the steps; `eager`: a first launch that cuDNN refuses moves the plan to its next
  // algorithm and returns false (the caller's kernel then rewrites all of y).
  bool enqueue(const ConvCall& c, const Schedule& s, bool eager, cudaStream_t stream);

  std::unique_ptr<CudnnHandle> handle_;
  cudaStream_t stream_ = nullptr;
  std::string why_;
  bool find_ = false;  // FRESCO_CUDNN_CONV_FIND=1: time the candidates instead of the heuristic's order
  DeviceBuffer workspace_{"cuDNN convolution workspace"};
  DeviceBuffer weight_slice_{"cuDNN convolution weight slice"};
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
  std::unordered_map<Key, Schedule, KeyHash> schedules_;
  bool graph_replay_ = true;
  std::string graph_note_;
  const void* graph_workspace_ = nullptr;  // the scratch the captured graphs point into
  const void* graph_slice_ = nullptr;
  std::unordered_map<CallKey, CudaGraphExec, CallKeyHash> graphs_;
  static constexpr size_t kMaxGraphs = 4096;
};

}  // namespace fresco::cuda
