// The CUDA backend's kernels, as plain launchers (the ggml/llm.c split): this header uses only
// POD types so that it compiles both in the CUDA translation units (C++17, CMake 3.25) and in
// the C++20 backend class (cuda/cuda_backend.cpp), which turns Tensors into these views.
//
// Every launcher enqueues on `stream`, computes in f32 (statistics in f64) and rounds once when
// it stores; a launch failure throws fresco::ApiError (FRESCO_CUDA_CHECK). Element-wise
// launchers are safe in place (an output view equal to an input view): each element is read
// and written by the same thread, row statistics are complete before a row is written.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace fresco::cuda {

// Element types, numbered as fresco::DType (checked in cuda_backend.cpp).
enum Dt : int { kF32 = 0, kBF16 = 1, kF16 = 2, kF64 = 3, kI64 = 4, kE4M3 = 5 };

size_t dt_size(int dt);

// A matrix of `rows` rows of `cols` elements, consecutive rows `ld` elements apart (a row-major
// tensor seen by its outermost dimension, possibly a column view of a wider matrix).
struct Mat {
  void* data;
  int dt;
  int64_t rows, cols, ld;
};

// A dense vector (weights, per-channel vectors, scalars, tables).
struct Vec {
  const void* data;  // nullptr: absent
  int dt;
  int64_t n;
};

// ---- copies and element-wise ops -------------------------------------------------------------

// dst = src, converted between f32, bf16 and f16 (round to nearest even); same shape.
void convert(Mat src, Mat dst, cudaStream_t stream);
void gelu_tanh(Mat x, Mat y, cudaStream_t stream);
void silu(Mat x, Mat y, cudaStream_t stream);
// y = a + b, y = a - b (any float dtypes; y may be a or b)
void add(Mat a, Mat b, Mat y, cudaStream_t stream);
void subtract(Mat a, Mat b, Mat y, cudaStream_t stream);
// y = a * b (any float dtypes; y may be a or b)
void multiply(Mat a, Mat b, Mat y, cudaStream_t stream);
// y = x * sigmoid(1.702 x)
void quick_gelu(Mat x, Mat y, cudaStream_t stream);
void gelu_erf(Mat x, Mat y, cudaStream_t stream);
// y[l, :] = table[ids[l], :] (table [V, C] dense of any float dtype; ids device i64 [L]); an id
// outside [0, V) gives a row of zeros.
void gather_rows(Vec table, int64_t C, const int64_t* ids, Mat y, cudaStream_t stream);
// y = a * x + b (host constants)
void affine(Mat x, float a, float b, Mat y, cudaStream_t stream);
// y += alpha[0] * x, alpha a device scalar of any float dtype
void axpy(Vec alpha, Mat x, Mat y, cudaStream_t stream);
// x += gate[c] * y
void gated_residual(Mat y, Vec gate, Mat x, cudaStream_t stream);
// y = (1 + scale[c]) * x + shift[c]
void modulate(Mat x, Vec shift, Vec scale, Mat y, cudaStream_t stream);
// out[2 half] = [cos(1000 t f_k), sin(1000 t f_k)], f_k = 10000^(-k/half); t a device scalar
void timestep_embedding(Vec t, Mat out, cudaStream_t stream);
// *count (device i64) = number of NaN/Inf elements of x (f32, bf16, f16 or f64)
void count_nonfinite(Mat x, int64_t* count, cudaStream_t stream);
// The step cache's change metric: sums[0] = sum |a - b| (the difference formed in f32),
// sums[1] = sum |b|, in f64 (device memory); a, b of one shape and one float dtype. `partial`
// is scratch of change_sums_scratch() doubles, whatever the shape. Deterministic (a partition
// fixed by the shape, a fixed reduction order, no atomics).
size_t change_sums_scratch();
void change_sums(Mat a, Mat b, double* sums, double* partial, cudaStream_t stream);
// y[i] (n dense elements of float dtype dt) = mean + std * the standard normal number i of the
// counter-based stream (seed, stream_id, substream) (src/backend/random.hpp); std 0: y = mean.
void fill_random(uint64_t seed, uint32_t stream_id, uint32_t substream, float mean, float std, void* y,
                 int dt, int64_t n, cudaStream_t stream);
// FP8 communication (cuda/quantize.cu): per row r of x (f32/bf16/f16), scales[r] =
// amax / 448 (1 for a zero row) and q (e4m3 bytes, Mat dt kE4M3) = x / scales[r], rounded to
// nearest even and saturated; dequantize_rows: y = q * scales[r], rounded once to y's dtype.
void quantize_rows(Mat x, Mat q, float* scales, cudaStream_t stream);
void dequantize_rows(Mat q, const float* scales, Mat y, cudaStream_t stream);
// FP8 attention's per-tensor quantization (backend.hpp, attention_fp8) of 16-bit x whose rows
// are 8-value aligned chunks: tensor_amax folds max |x| into *amax_bits (a float's bits, zeroed
// by the caller first); quantize_tensor writes q (dense e4m3 [rows, cols]) = x / s rounded to
// nearest even and saturated, s = amax / 448 (1 for all zeros), and *descale = s.
void tensor_amax(Mat x, unsigned* amax_bits, cudaStream_t stream);
void quantize_tensor(Mat x, const unsigned* amax_bits, uint8_t* q, float* descale, cudaStream_t stream);
// The device scalars of one FP8 attention (cuda/cudnn_sdpa_fp8.hpp), f32, in this order: the
// descales of q, k, v (written by quantize_tensor), P's descale and scale and O's scale (set by
// attention_fp8_prologue), and the two maxima cuDNN writes (of P and of O).
enum Fp8Scalar : int { kDescaleQ, kDescaleK, kDescaleV, kDescaleP, kScaleP, kScaleO, kAmaxP, kAmaxO, kFp8ScalarCount };
// Before an FP8 attention: amax_bits[0..2] = 0 and the constant scales dP = 1/448, sP = 448 and
// sO = 1 (O is stored in 16 bits) set in `scalars`. A kernel, so a captured step sets them too.
void attention_fp8_prologue(float* scalars, unsigned* amax_bits, cudaStream_t stream);
// The gated FP8 linear's folding (n output channels): scale_out[i] = w_scale[i] * gate[i] and,
// where bias_out is non-null, bias_out[i] = gate[i] * bias[i] rounded once to bias_dt.
void fold_gate(const float* w_scale, Vec gate, Vec bias, int64_t n, float* scale_out, void* bias_out, int bias_dt,
               cudaStream_t stream);
// latent [c rows of h*w] <-> tokens [(h/2)(w/2), 4c]
void pack_latent(Mat latent, int64_t c, int64_t h, int64_t w, Mat tokens, cudaStream_t stream);
void unpack_latent(Mat tokens, int64_t c, int64_t h, int64_t w, Mat latent, cudaStream_t stream);

// ---- normalisation and rotary embedding --------------------------------------------------------

// y = (x - mean) / sqrt(var + eps) per row; with shift/scale (data non-null):
// y = (1 + scale) * that + shift (norm_modulate).
void layer_norm(Mat x, Vec shift, Vec scale, float eps, Mat y, cudaStream_t stream);
// norm_modulate_fp8: layer_norm with shift/scale, each value rounded to x's dtype, then the row
// quantized as quantize_rows does (q e4m3, qscale[r] f32), in one pass. False (nothing
// launched) where the one-pass kernel does not apply (f32, rows over 4096 wide, misaligned):
// the caller runs layer_norm and quantize_rows.
// y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c] per row (CLIP's LayerNorm).
void layer_norm_affine(Mat x, Vec weight, Vec bias, float eps, Mat y, cudaStream_t stream);
bool layer_norm_fp8(Mat x, Vec shift, Vec scale, float eps, Mat q, float* qscale, cudaStream_t stream);
// x, y: rows of H heads of D elements. normalize: y = x * rsqrt(mean(x^2) + eps) * scale[d];
// with cos/sin ([rows, D/2] tables, data non-null) the pairs (2p, 2p+1) are then rotated.
void rms_norm_rope(Mat x, int64_t heads, int64_t head_dim, bool normalize, Vec scale, float eps,
                   Mat cos, Mat sin, Mat y, cudaStream_t stream);

// ---- linear ----------------------------------------------------------------------------------

// Epilogues of linear_epilogue.
enum EpilogueKind : int { kEpiNone = 0, kEpiGelu = 1, kEpiGatedResidual = 2 };
// From the f32 product acc [M, N] (ld_acc): v = acc + bias[n]; y = v, gelu_tanh(v), or
// y += gate[n] * v (kEpiGatedResidual).
void linear_epilogue(const float* acc, int64_t ld_acc, Vec bias, int epilogue, Vec gate, Mat y,
                     cudaStream_t stream);
// acc [M, N] (ld_acc, f32) = x [M, K] · w [N, K]^T in f32, any float dtypes: a plain tiled
// kernel for what cuBLASLt declines.
void gemm_fallback(Mat x, Mat w, float* acc, int64_t ld_acc, cudaStream_t stream);

// ---- attention -------------------------------------------------------------------------------

// o [Lq, H*D] = softmax(q k^T * scale) v per head; q, k, v, o any row stride, one dtype each
// (f32, bf16 or f16); lse [Lq, H] f32 (nullable) = natural-log log-sum-exp of the scaled scores.
// A tiled kernel with an online softmax and f32 accumulation (one block per query tile and
// head); head_dim <= 256.
void attention(Mat q, Mat k, Mat v, Mat o, int64_t heads, int64_t head_dim, float scale,
               float* lse, cudaStream_t stream);
constexpr int64_t kAttentionMaxHeadDim = 256;
// The same kernel with s = scale q k^T + bias[h, i, j] (bias: f32 [H, Lq, Lk] dense, nullable)
// and, when causal, keys j > i masked; no lse (the text encoders' attention).
void attention_bias(Mat q, Mat k, Mat v, Mat o, int64_t heads, int64_t head_dim, float scale,
                    const float* bias, bool causal, cudaStream_t stream);
// lse' = log(e^lse + e^lse_part), o = e^(lse - lse') o + e^(lse_part - lse') o_part.
void attention_merge(Mat o_part, const float* lse_part, Mat o, float* lse, int64_t heads,
                     int64_t head_dim, cudaStream_t stream);
// lse [L, H] = stats [H, L] (cuDNN's head-major softmax statistics).
void heads_to_tokens(const float* stats, float* lse, int64_t L, int64_t H, cudaStream_t stream);

// ---- decoder (channel-major) -----------------------------------------------------------------

// x: Ci rows of H*W; w: [Co, Ci, k, k] dense; bias [Co]; y: Co rows of Ho*W,
// Ho = H + 2 pad_rows - (k - 1); columns zero-padded by k/2. k odd, k <= 7.
void conv2d(Mat x, int64_t H, int64_t W, Vec weight, int64_t Co, int64_t k, Vec bias,
            int pad_rows, Mat y, cudaStream_t stream);
constexpr int64_t kConvMaxKernel = 7;
// sums [groups, 2] f64 = per-group sum and sum of squares of x (C rows of H*W); `partial` is
// scratch of group_sums_scratch(C, H*W, groups) doubles. Deterministic (fixed reduction order).
size_t group_sums_scratch(int64_t C, int64_t hw, int groups);
void group_sums(Mat x, int groups, double* sums, double* partial, cudaStream_t stream);
// y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c] from device sums over `count`.
void group_norm(Mat x, const double* sums, int groups, double count, float eps, Vec weight,
                Vec bias, Mat y, cudaStream_t stream);
// x: C rows of H*W -> y: C rows of 2H*2W
void upsample_nearest(Mat x, int64_t H, int64_t W, Mat y, cudaStream_t stream);
// y [B, A] = x [A, B]^T
void transpose(Mat x, Mat y, cudaStream_t stream);

// ---- the decoder's library paths (cuda/decoder_kernels.cu) -------------------------------------

// y[c, :] = bias[c] (Co rows; cuDNN's convolution then accumulates onto it, cuda/conv_cudnn.hpp).
void fill_rows(Vec bias, Mat y, cudaStream_t stream);
// p [rows, n] (p's dtype) = exp(scale s - m) / l per row of the f32 scores s (ld_s), m the row's
// max and l its sum of exponentials; lse[r * lse_stride] = m + log l (nullable). One block per row.
void softmax_rows(const float* s, int64_t ld_s, int64_t n, float scale, Mat p, float* lse, int64_t lse_stride,
                  cudaStream_t stream);

}  // namespace fresco::cuda
