// The CUDA backend (issue 13): every op of src/backend/backend.hpp on one GPU, enqueued on the
// backend's own compute stream. Declared without CUDA headers so that the registry
// (src/backend/backend.cpp) and the CLI can include it in any build.
//
//   matrix products   cuBLASLt (cuda/cublaslt.hpp): bias and GELU-tanh epilogues fused, the
//                     gated residual through an f32 product and one fused update kernel
//   attention         cuDNN's fused SDPA (cuda/cudnn_sdpa.hpp) for bf16/f16, else a tiled
//                     online-softmax kernel (cuda/attention.cu)
//   everything else   kernels of cuda/*.cu (POD launchers in cuda/kernels.hpp)
//
// Environment (switches for comparisons and debugging; the defaults are the tested paths):
// FRESCO_CUDNN_SDPA=0 turns cuDNN attention off (the tiled kernel serves);
// FRESCO_CUDNN_GRAPH=0 calls cudnnBackendExecute directly instead of replaying a graph captured
// of it per (shape, pointers) (the default, because the direct call allocates host memory on
// every call, which a denoising step must not);
// FRESCO_CUDA_VECTOR=0 turns the vectorised (16-byte) element-wise, epilogue and RMSNorm/RoPE
// kernels off;
// FRESCO_CUDNN_STATS=1 makes cuDNN attention always write the softmax statistics (by default
// a call without lse uses cuDNN's inference form, and the form with statistics only where cuDNN
// declines it);
// FRESCO_CUDA_LN_REGISTERS=0 turns the one-pass LayerNorm(+modulate) kernel off (the three-pass
// kernel serves), FRESCO_CUDA_ROPE_ROWS=0 the row-per-warp RMSNorm+RoPE kernel (for A/B timings);
// FRESCO_CUDA_VERBOSE=1 prints what the backend chose (cuBLASLt plans, cuDNN plans and why
// cuDNN declined) when it is destroyed.
#pragma once

#include <memory>

namespace fresco {

class Backend;

// The CUDA backend on device `device` (ApiError when the device cannot be used).
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace fresco
