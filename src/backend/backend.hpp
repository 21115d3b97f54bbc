// The backend interface: every op the FLUX transformer needs, on preallocated tensors.
//
// Conventions (ggml-style): outputs are preallocated Tensor handles passed by const reference
// (a Tensor is a handle; the op writes its data). Element-wise ops may run in place (output
// equal to an input). Row-major shapes; a "sequence" tensor is [L, C] or [L, H, D] with the
// token index outermost, so a row range is a sequence shard. `supports(op, dtype)` tells the
// caller (and the op test program) what a backend implements.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "src/core/tensor.hpp"

namespace fresco {

enum class Op {
  linear,              // y[L,N] = x[L,K] · W[N,K]^T + b[N]
  layer_norm,          // y[L,C] = (x - mean) / sqrt(var + eps), no affine
  modulate,            // y[L,C] = (1 + scale[C]) * x + shift[C]
  rms_norm_heads,      // y[L,H,D] = x * rsqrt(mean_D(x^2) + eps) * scale[D]
  rope,                // pairs of x[L,H,D] rotated by cos/sin[L,D/2]
  attention,           // o[Lq,H,D], lse[Lq,H] = softmax(q k^T / sqrt(D)) v
  attention_merge,     // (o, lse) <- merge of two partial attentions by the log-sum-exp rule
  gelu_tanh,           // y = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
  silu,                // y = x * sigmoid(x)
  gated_residual,      // x[L,C] += gate[C] * y[L,C]
  add,                 // y = a + b (same shape)
  axpy,                // y += alpha * x (the Euler step)
  timestep_embedding,  // e[256] = [cos(1000 t f_k), sin(1000 t f_k)]
  concat_rows,         // out[sum L_i, C] = cat(parts) along the sequence
  split_rows,          // parts = split(in) along the sequence
  copy_columns,        // dst[L,n] = src[L, col0:col0+n]
  paste_columns,       // dst[L, col0:col0+n] = src[L,n]
  pack_latent,         // latent[16,h,w] -> tokens[(h/2)(w/2), 64]
  unpack_latent,       // tokens -> latent
  convert,             // y = x in another dtype (f32 <-> bf16/f16), e.g. half-precision buffers
  conv2d,              // y[Co,Ho,W] = conv(x[Ci,H,W], w[Co,Ci,k,k]) + b, stride 1 (VAE)
  group_norm,          // per-group sums of x[C,H,W] and y = (x - mean) * rstd * weight + bias (VAE)
  upsample_nearest,    // y[C,2H,2W] = x[C,H,W] repeated 2x2 (VAE)
  transpose,           // y[B,A] = x[A,B]^T (channel-major <-> token-major)
  count
};

const char* op_name(Op op);
std::vector<Op> all_ops();

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  virtual bool supports(Op op, DType dtype) const = 0;

  // Memory on this backend's device, and transfers from/to the host.
  virtual Tensor alloc(const Shape& shape, DType dtype) = 0;
  virtual Tensor upload(const Tensor& host) = 0;
  virtual Tensor download(const Tensor& device_tensor) = 0;
  virtual void synchronize() {}

  virtual void linear(const Tensor& x, const Tensor& weight, const Tensor* bias,
                      const Tensor& y) = 0;
  virtual void layer_norm(const Tensor& x, float eps, const Tensor& y) = 0;
  virtual void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                        const Tensor& y) = 0;
  virtual void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps,
                              const Tensor& y) = 0;
  virtual void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) = 0;
  // lse may be undefined when the caller does not need it.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                         const Tensor& lse) = 0;
  // Merges a partial attention over other keys into the running one, in fp32:
  // lse' = log(e^lse + e^lse_part), o' = e^(lse - lse') o + e^(lse_part - lse') o_part.
  // o, o_part: [L, H, D]; lse, lse_part: [L, H]; o and lse are updated in place.
  virtual void attention_merge(const Tensor& o, const Tensor& lse, const Tensor& o_part,
                               const Tensor& lse_part) = 0;
  virtual void gelu_tanh(const Tensor& x, const Tensor& y) = 0;
  virtual void silu(const Tensor& x, const Tensor& y) = 0;
  virtual void gated_residual(const Tensor& x, const Tensor& gate, const Tensor& y) = 0;
  virtual void add(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  virtual void axpy(float alpha, const Tensor& x, const Tensor& y) = 0;
  virtual void timestep_embedding(float t, const Tensor& out) = 0;
  virtual void concat_rows(std::span<const Tensor> parts, const Tensor& out) = 0;
  virtual void split_rows(const Tensor& in, std::span<const Tensor> parts) = 0;
  virtual void copy_columns(const Tensor& src, int64_t col0, const Tensor& dst) = 0;
  virtual void paste_columns(const Tensor& src, const Tensor& dst, int64_t col0) = 0;
  virtual void pack_latent(const Tensor& latent, const Tensor& tokens) = 0;
  virtual void unpack_latent(const Tensor& tokens, const Tensor& latent) = 0;
  // y = x converted to y's dtype (same element count); f32 <-> bf16 and f32 <-> f16.
  virtual void convert(const Tensor& x, const Tensor& y) = 0;

  // 2-D convolution, stride 1. x: [Ci, H, W]; weight: [Co, Ci, k, k] (k odd); bias: [Co];
  // y: [Co, H + 2*pad_rows - (k-1), W]. Columns are zero-padded by (k-1)/2; rows by pad_rows
  // (k/2 for a whole image, 0 when x carries halo rows from neighbouring ranks).
  virtual void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
                      const Tensor& y) = 0;
  // Sum and sum of squares of each of `groups` channel groups of x [C, H, W], in double:
  // sums[2g] = sum, sums[2g+1] = sum of squares. Partial sums of row shards add up.
  virtual std::vector<double> group_sums(const Tensor& x, int groups) = 0;
  // GroupNorm with statistics from (all-reduced) group_sums over `count` values per group:
  // y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c]. x, y: [C, H, W].
  virtual void group_norm(const Tensor& x, const std::vector<double>& sums, double count,
                          float eps, const Tensor& weight, const Tensor& bias, const Tensor& y) = 0;
  // x: [C, H, W] -> y: [C, 2H, 2W], nearest neighbour.
  virtual void upsample_nearest(const Tensor& x, const Tensor& y) = 0;
  // x: [A, B] -> y: [B, A].
  virtual void transpose(const Tensor& x, const Tensor& y) = 0;
};

// The backends compiled into this build, CPU first; used by the op test program and the CLI.
std::vector<std::unique_ptr<Backend>> available_backends();
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace fresco
