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
// Environment switches for comparisons and debugging (FRESCO_CUDA_* and FRESCO_CUDNN_*; the
// defaults are the tested paths): src/core/tuning.cpp lists them with what each does, and the
// gpu-labelled CTests cuda_switch_* run the op test with each one flipped.
#pragma once

#include <memory>

namespace fresco {

class Backend;

// The CUDA backend on device `device` (ApiError when the device cannot be used).
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace fresco
