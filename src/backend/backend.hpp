// The backend interface: every op the FLUX transformer and its decoder need, on preallocated
// tensors, enqueued on the backend's compute stream (src/core/exec.hpp).
//
// Conventions (ggml-style, one rule for every op):
//  - Inputs first, outputs last. Outputs are preallocated Tensor handles passed by const
//    reference (a Tensor is a handle; the op writes its data). An optional tensor is a pointer.
//  - Element-wise ops may run in place (an output equal to an input).
//  - Row-major shapes; a "sequence" tensor is [L, C] or [L, H, D] with the token index
//    outermost, so a row range is a sequence shard. Sequence operands may carry a row stride
//    (Tensor::cols views of a wider matrix); other operands (weights, per-channel vectors,
//    scalars, statistics) are contiguous.
//  - Activations are f32 or bf16 (the compute dtype); weights may be f32, bf16 or f16 whatever
//    the activations are; accumulation is f32 (statistics f64). Every op reads its inputs,
//    computes in f32 or wider, and rounds once when it stores its output: these are the store
//    points the bf16 CPU mode shares with the GPU.
//  - Per-step values (t, guidance, dt) are device tensors, never host floats, so a captured
//    step does not bake in step 0's values.
//  - `supports(OpDesc)` says what a backend implements (the op test program and the CLI ask).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "src/core/exec.hpp"
#include "src/core/tensor.hpp"

namespace fresco {

enum class Op {
  linear,              // y[L,N] = epilogue(x[L,K] · W[N,K]^T + b[N])
  layer_norm,          // y[L,C] = (x - mean) / sqrt(var + eps), no affine
  modulate,            // y[L,C] = (1 + scale[C]) * x + shift[C]
  norm_modulate,       // fused layer_norm + modulate
  rms_norm_heads,      // y[L,H,D] = x * rsqrt(mean_D(x^2) + eps) * scale[D]
  rope,                // pairs of x[L,H,D] rotated by cos/sin[L,D/2]
  rms_norm_rope,       // fused rms_norm_heads + rope (q and k from the qkv rows in place)
  attention,           // o[Lq,H,D], lse[Lq,H] = softmax(q k^T / sqrt(D)) v
  attention_merge,     // (o, lse) <- merge of two partial attentions by the log-sum-exp rule
  gelu_tanh,           // y = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
  silu,                // y = x * sigmoid(x)
  gated_residual,      // x[L,C] += gate[C] * y[L,C]
  add,                 // y = a + b (same shape)
  subtract,            // y = a - b (same shape; the step cache's residual Q <- x - Q in place)
  affine,              // y = a x + b with constant a, b (the decoder's latent scaling)
  axpy,                // y += alpha[0] * x (the Euler step; alpha a device scalar)
  timestep_embedding,  // e[256] = [cos(1000 t f_k), sin(1000 t f_k)], t a device scalar
  copy,                // dst = src: strided rows, dtype conversion, host <-> device
  pack_latent,         // latent[16,h,w] -> tokens[(h/2)(w/2), 64]
  unpack_latent,       // tokens -> latent
  count_nonfinite,     // count[0] (i64) = number of NaN/Inf elements of x
  change_sums,         // sums[2] (f64) = (sum |a - b|, sum |b|): the step cache's change metric
  conv2d,              // y[Co,Ho,W] = conv(x[Ci,H,W], w[Co,Ci,k,k]) + b, stride 1 (VAE)
  group_sums,          // sums[G,2] (f64) = per-group sum and sum of squares of x[C,H,W] (VAE)
  group_norm,          // y = (x - mean_g) * rstd_g * weight + bias from group sums (VAE)
  upsample_nearest,    // y[C,2H,2W] = x[C,H,W] repeated 2x2 (VAE)
  transpose,           // y[B,A] = x[A,B]^T (channel-major <-> token-major)
  fill_random,         // y[i] = mean + std * normal(seed, stream, substream, i) (random weights)
  quantize_rows,       // q[R,C] e4m3, scale[R] f32 = amax(x row) / 448: FP8 communication
  dequantize_rows,     // y[R,C] = q[R,C] * scale[R]
  linear_fp8,          // y[M,N] = epilogue(xs[M] ws[N] (xq[M,K] · wq[N,K]^T) + b[N]), e4m3 operands
  norm_modulate_fp8,   // q, scale = quantize_rows(norm_modulate(x)): a token linear's e4m3 input
  gather_rows,         // y[L,C] = table[ids[l]] (the text encoders' embeddings; ids i64)
  layer_norm_affine,   // y[L,C] = layer_norm(x) * weight[C] + bias[C] (CLIP)
  multiply,            // y = a * b (same shape; T5's gated FFN)
  quick_gelu,          // y = x * sigmoid(1.702 x) (CLIP's MLP)
  attention_bias,      // o[Lq,H,D] = softmax(scale q k^T + bias[H,Lq,Lk], causal mask) v (T5, CLIP)
  attention_fp8,       // attention with q, k, v and P in e4m3, one scale per tensor (--fp8-attention)
  gelu_erf,            // y = 0.5 x (1 + erf(x / sqrt(2))), the exact GELU (the U-Net's GEGLU)
  count
};

const char* op_name(Op op);
std::vector<Op> all_ops();

// What a linear does with x W^T + b before storing it.
enum class Epilogue {
  none,            // y = x W^T + b
  gelu_tanh,       // y = gelu_tanh(x W^T + b)
  gated_residual,  // y += gate ⊙ (x W^T + b): y is the residual stream, read and written
};
const char* epilogue_name(Epilogue epilogue);

// One op as a backend would run it (ggml's supports_op): the dtypes of what it reads, of its
// weights, of what it writes and of its accumulation, the linear's epilogue, and whether any
// sequence operand has a row stride.
struct OpDesc {
  Op op = Op::count;
  DType in = DType::f32;
  DType weight = DType::f32;
  DType out = DType::f32;
  DType accum = DType::f32;
  Epilogue epilogue = Epilogue::none;
  bool strided = false;
  std::string describe() const;  // "linear in=bf16 w=bf16 out=bf16 acc=f32 gelu_tanh strided"
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  virtual bool supports(const OpDesc& op) const = 0;

  // ---- execution and memory -------------------------------------------------------------
  // The compute stream: every op below is enqueued here.
  virtual Stream& stream() = 0;
  // An event that also keeps the time of its point (Event::elapsed_ms), for benchmarks. The
  // host's default is correct for backends whose ops complete before they return.
  virtual std::unique_ptr<Event> new_timing_event() { return std::make_unique<HostEvent>(); }
  // Captures the device work that `enqueue` queues on the compute stream, without running it,
  // as a graph to replay (src/core/exec.hpp). Null where the backend cannot capture (the CPU).
  // Everything `enqueue` touches must already exist (run it once eagerly first: scratch that
  // would grow during a capture throws), and it must not synchronize the host.
  virtual std::unique_ptr<StepGraph> capture(const std::function<void()>& enqueue) {
    (void)enqueue;
    return nullptr;
  }
  // Changes whenever device memory that a captured step may point at (grow-only scratch, library
  // workspaces) is allocated anew: a graph captured under another value may read freed memory
  // and must be captured again (runtime/step_runner.hpp). Constant where nothing is captured.
  virtual uint64_t allocation_epoch() const { return 0; }
  // Bytes of device memory in use on this backend's device (all processes' and the driver's
  // included), or -1 where that is not known (the CPU).
  virtual int64_t device_memory_in_use() const { return -1; }
  // Memory of this backend's device (one Storage; Arena hands out views of it).
  virtual std::shared_ptr<Storage> alloc_storage(size_t bytes) = 0;
  Tensor alloc(const Shape& shape, DType dtype);
  // Blocks the host until the compute stream is idle.
  void synchronize() { stream().synchronize(); }
  // Set-up helpers, never inside a step: a new device tensor holding a host tensor's values
  // (asynchronous; the host tensor is kept alive by the caller until the next synchronize),
  // and a host tensor holding a device tensor's values (synchronizes).
  Tensor upload(const Tensor& host);
  Tensor download(const Tensor& device_tensor);

  // dst = src, asynchronously on the compute stream. Same dim(0) and row_numel (inner dims
  // may be grouped differently); either may have a row stride. Between host and device the
  // dtypes must match; on one device the dtype is converted (f32 <-> bf16/f16).
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;

  // ---- transformer ops ------------------------------------------------------------------
  // x: [M, K]; weight: [N, K] (PyTorch layout); bias: [N] or null; y: [M, N]; gate: [N]
  // (gated_residual only).
  virtual void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
                      Epilogue epilogue = Epilogue::none, const Tensor* gate = nullptr) = 0;
  virtual void layer_norm(const Tensor& x, float eps, const Tensor& y) = 0;
  // x, y: [L, C]; shift, scale: [C]
  virtual void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                        const Tensor& y) = 0;
  // y = (1 + scale) * layer_norm(x) + shift, rounded once.
  virtual void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                             const Tensor& y) = 0;
  // x, y: [L, H, D]; scale: [D]
  virtual void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps,
                              const Tensor& y) = 0;
  // x, y: [L, H, D]; cos, sin: [L, D/2]
  virtual void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) = 0;
  // y = rope(rms_norm_heads(x)), rounded once; x is typically a strided view of the qkv rows.
  virtual void rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                             const Tensor& sin, const Tensor& y) = 0;
  // q, o: [Lq, H, D]; k, v: [Lk, H, D] (any row strides); lse: [Lq, H] f32, may be undefined
  // when the caller does not need it.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                         const Tensor& lse) = 0;
  // Merges a partial attention over other keys into the running one, in fp32:
  // lse' = log(e^lse + e^lse_part), o' = e^(lse - lse') o + e^(lse_part - lse') o_part.
  // o, o_part: [L, H, D]; lse, lse_part: [L, H] f32; o and lse are updated in place.
  virtual void attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                               const Tensor& lse) = 0;
  virtual void gelu_tanh(const Tensor& x, const Tensor& y) = 0;
  virtual void silu(const Tensor& x, const Tensor& y) = 0;
  // x: [L, C] updated in place; gate: [C]; y: [L, C]
  virtual void gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) = 0;
  virtual void add(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // y = a - b: dtypes, row strides and aliasing as add (y may be a or b: Q <- x - Q in place).
  virtual void subtract(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  virtual void affine(const Tensor& x, float a, float b, const Tensor& y) = 0;
  // y += alpha[0] * x; alpha: [1] f32 device scalar.
  virtual void axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) = 0;
  // t: [1] f32 device scalar; out: [2 * half].
  virtual void timestep_embedding(const Tensor& t, const Tensor& out) = 0;
  virtual void pack_latent(const Tensor& latent, const Tensor& tokens) = 0;
  virtual void unpack_latent(const Tensor& tokens, const Tensor& latent) = 0;
  // count: [1] i64 on this device.
  virtual void count_nonfinite(const Tensor& x, const Tensor& count) = 0;
  // The step cache's change metric (docs/step-cache.md): sums[0] = sum |a - b|, the difference
  // formed in f32 from the stored values (float(a) - float(b)), and sums[1] = sum |b|, both
  // accumulated in f64. a, b: [L, C] of one shape and one float dtype (f32, bf16, f16), any row
  // stride (a row range of a larger buffer); sums: [2] f64 on this device. Deterministic: the
  // same bits on every call (a fixed partition and reduction order, no atomics); allocates
  // nothing after the first call, so a captured step may contain it.
  virtual void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) = 0;

  // ---- decoder ops (channel-major [C, H, W]) --------------------------------------------
  // 2-D convolution, stride 1. x: [Ci, H, W]; weight: [Co, Ci, k, k] (k odd); bias: [Co];
  // y: [Co, H + 2*pad_rows - (k-1), W]. Columns are zero-padded by (k-1)/2; rows by pad_rows
  // (k/2 for a whole image, 0 when x carries halo rows from neighbouring ranks).
  virtual void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
                      const Tensor& y) = 0;
  // sums: [groups, 2] f64: sum and sum of squares of each channel group of x [C, H, W].
  // Partial sums of row shards add up (all-reduced on the device by the row partition).
  virtual void group_sums(const Tensor& x, int groups, const Tensor& sums) = 0;
  // GroupNorm with statistics from (all-reduced) sums over `count` values per group:
  // y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c]. x, y: [C, H, W].
  virtual void group_norm(const Tensor& x, const Tensor& sums, double count, float eps,
                          const Tensor& weight, const Tensor& bias, const Tensor& y) = 0;
  // x: [C, H, W] -> y: [C, 2H, 2W], nearest neighbour.
  virtual void upsample_nearest(const Tensor& x, const Tensor& y) = 0;
  // x: [A, B] -> y: [B, A].
  virtual void transpose(const Tensor& x, const Tensor& y) = 0;

  // ---- FP8 communication (opt-in: --comm-dtype e4m3) --------------------------------------
  // Per-row (per-token) scaling: scales[r] = max_c |x[r,c]| / 448 (1 where the row is all
  // zeros), q[r,c] = e4m3(x[r,c] / scales[r]) rounded to nearest even. x: [R, C] of a compute
  // dtype (or [R, ...]: rows of row_numel() values), any row stride; q: e4m3 of x's shape, any
  // row stride; scales: f32 [R], contiguous.
  virtual void quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) = 0;
  // y[r,c] = float(q[r,c]) * scales[r], rounded once to y's dtype. Shapes as quantize_rows.
  virtual void dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) = 0;

  // ---- FP8 compute (opt-in: --dtype fp8; docs/performance.md "FP8") ------------------------
  // The linear on e4m3 operands with f32 accumulation, each operand scaled per row:
  //   acc[m,n] = sum_k e4m3(xq[m,k]) * e4m3(wq[n,k])          (exact products, f32 sums)
  //   p[m,n]   = x_scale[m] * w_scale[n] * acc[m,n] + b[n]
  //   y = p, gelu_tanh(p) or y + gate[n] * p (the epilogues of linear), rounded once to y's dtype.
  // xq: [M, K] e4m3 (quantize_rows of the activation: x ≈ xq * x_scale), any row stride;
  // x_scale: [M] f32; wq: [N, K] e4m3 dense (quantize_rows of the weight: one scale per output
  // channel); w_scale: [N] f32; bias: [N] (any float dtype) or null; y: [M, N] of a compute
  // dtype, any row stride; gate: [N] (gated_residual only). The GPU folds the gate into w_scale
  // and the bias (y + (gate w_scale) x_scale acc + gate b): the same value up to f32 rounding.
  virtual void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                          const Tensor* bias, const Tensor& y, Epilogue epilogue = Epilogue::none,
                          const Tensor* gate = nullptr) = 0;
  // The input of the linears after a norm_modulate, quantized where it is made: q and scales
  // exactly as quantize_rows of norm_modulate(x, shift, scale, eps) stored in x's dtype, without
  // storing that. x: [L, C] of a compute dtype; shift, scale: [C]; q: e4m3 [L, C], any row
  // stride; scales: f32 [L].
  virtual void norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                 const Tensor& q, const Tensor& scales) = 0;

  // ---- text encoders (docs/text-encoders.md) ----------------------------------------------
  // y[l, :] = table[ids[l], :], rounded once to y's dtype. table: [V, C] dense (any float dtype,
  // a weight); ids: [L] i64 on this device, each in [0, V) (the CPU throws on one outside, the
  // GPU, which cannot, writes a row of zeros); y: [L, C], any row stride.
  virtual void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) = 0;
  // y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c], rounded once. x, y: [L, C] (row
  // strides as layer_norm); weight, bias: [C].
  virtual void layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                                 const Tensor& y) = 0;
  // y = a * b: dtypes, row strides and aliasing as add.
  virtual void multiply(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // y = x * sigmoid(1.702 x) (CLIP's quick_gelu).
  virtual void quick_gelu(const Tensor& x, const Tensor& y) = 0;
  // y = 0.5 x (1 + erf(x / sqrt(2))): the exact GELU of the U-Net's GEGLU (docs/sdxl.md); dtypes,
  // row strides and aliasing as silu.
  virtual void gelu_erf(const Tensor& x, const Tensor& y) = 0;
  // Attention with a given scale, an additive bias and an optional causal mask, in f32:
  //   s[h,i,j] = scale * q[i,h,:] . k[j,h,:] + bias[h,i,j] (bias null: 0), and -inf where causal
  //   and j > i; o[i,h,:] = softmax_j(s[h,i,:]) v[:,h,:], rounded once.
  // q, o: [Lq, H, D]; k, v: [Lk, H, D] (any row strides, as attention); bias: f32 [H, Lq, Lk]
  // dense, finite. With `causal` every query must see a key (Lq <= Lk).
  virtual void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                              float scale, const Tensor& o) = 0;

  // ---- FP8 attention (opt-in: --fp8-attention; docs/performance.md "FP8 attention") ---------
  // attention (the same shapes, row strides and lse) with both products on e4m3 operands, one
  // scale per tensor (what cuDNN's FP8 flash attention takes):
  //   s_x = amax(x) / 448 over the whole tensor (1 where x is all zeros), x8 = e4m3(x / s_x)
  //     for x = q, k, v (rounded to nearest even, as quantize_rows);
  //   S = (s_q s_k / sqrt(D)) (q8 k8^T) in f32; P = softmax_j(S); lse = max_j S + log sum_j e^(S - max);
  //   P8 = e4m3(448 P) (P <= 1 never saturates); o = (s_v / 448) (P8 v8), rounded once to o's dtype.
  // q, k, v, o of one 16-bit compute dtype (bf16, f16).
  virtual void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                             const Tensor& lse) = 0;
  // The attention that the model's attention plans run: attention, or attention_fp8 while
  // set_attention_fp8(true). Host state: a captured step keeps the choice it was captured with.
  void joint_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse) {
    if (attention_fp8_) attention_fp8(q, k, v, o, lse);
    else attention(q, k, v, o, lse);
  }
  void set_attention_fp8(bool on) { attention_fp8_ = on; }
  bool attention_fp8_enabled() const { return attention_fp8_; }

  // ---- set-up ops -----------------------------------------------------------------------
  // y (dense, any float dtype) [i] = mean + std * n_i, rounded once, where n_i is the standard
  // normal number i of the counter-based stream (seed, stream, substream): Philox4x32-10 on
  // counter (i low, i high, substream, stream) and key (seed low, seed high), Box-Muller on the
  // block's first two words (src/backend/random.hpp; the initial noise's generator). std == 0
  // fills with mean and draws nothing. Random weights made on the device (--weights random:S).
  virtual void fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                           const Tensor& y) = 0;

 private:
  bool attention_fp8_ = false;  // joint_attention's choice
};

// The backends compiled into this build, CPU first (the op test program runs them all).
std::vector<std::unique_ptr<Backend>> available_backends();
// `name`: "cpu" or "cuda" (InputError naming --backend when it is not built or has no device);
// `device`: the GPU to use, modulo the GPUs visible (a rank passes its node-local rank).
std::unique_ptr<Backend> make_backend(const std::string& name, int device = 0);
// What --backend auto means here: "cuda" when this build has the CUDA backend and a GPU is
// visible, else "cpu"; the environment variable FRESCO_DEFAULT_BACKEND (cpu or cuda) overrides.
std::string default_backend_name();
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace fresco
