// Attention for head dims above what the fused kernels take (cuDNN's SDPA and the tiled kernel
// stop at 256): the decoder's mid-block attends with one head of 512 over all h*w positions
// (65 536 at 2048^2). Per head and per block of Bq queries, on tensor cores:
//
//   S [Bq, Lk] f32  = q_blk · k^T                 (cuBLASLt, f32 accumulation and output)
//   P [Bq, Lk]      = exp(scale S - m) / l, lse = m + log l   (softmax_rows, P in the q dtype)
//   o_blk [Bq, D]   = P · v                       (cuBLASLt, v transposed once per head)
//
// so no Lq x Lk matrix exists: the scores of one block take at most kScoreBytes (256 MiB:
// 1024 queries at Lk = 65 536), their probabilities half that in bf16. The FLOPs are the fused
// kernel's (4 Lq Lk D); the extra traffic is the block's scores written and read twice and its
// probabilities once (12 bytes per score in bf16). Scratch is grow-only and kept.
#pragma once

#include <cstdint>

#include "cuda/cublaslt.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kernels.hpp"

namespace fresco::cuda {

class WideAttention {
 public:
  // q, o: Lq rows of H*D (any row stride); k, v: Lk rows of H*D; one float dtype for all four;
  // lse: [Lq, H] f32 or null. Enqueues o (and lse) = softmax(q k^T * scale) v per head.
  void run(LtGemm& gemm, Mat q, Mat k, Mat v, Mat o, int64_t H, int64_t D, float scale, float* lse,
           cudaStream_t stream);

  static constexpr size_t kScoreBytes = size_t(256) << 20;
  // Queries per block for Lk keys.
  static int64_t block_rows(int64_t Lq, int64_t Lk);

 private:
  DeviceBuffer scores_{"wide attention scores"};
  DeviceBuffer probs_{"wide attention probabilities"};
  DeviceBuffer keys_{"wide attention dense keys"};
  DeviceBuffer values_t_{"wide attention transposed values"};
  DeviceBuffer acc_{"wide attention f32 output"};
};

}  // namespace fresco::cuda
