// FRESCO_CUDA_CHECK: the one checking macro of the CUDA runtime family; a failed call throws
// fresco::ApiError naming the call, the error and the source location.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "src/core/error.hpp"

#define FRESCO_CUDA_CHECK(call)                                                          \
  do {                                                                                   \
    const cudaError_t fresco_cuda_rc_ = (call);                                          \
    if (fresco_cuda_rc_ != cudaSuccess)                                                  \
      throw ::fresco::ApiError(std::string("CUDA call failed: ") +                       \
                               cudaGetErrorString(fresco_cuda_rc_) + " [" #call " at " + \
                               ::fresco::source_location(__FILE__, __LINE__) + "]");     \
  } while (0)
