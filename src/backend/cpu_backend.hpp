// The CPU reference backend: plain loops threaded with OpenMP, matrix products through CBLAS
// (OpenBLAS). This backend *is* the specification the other backends are tested against, so
// clarity wins over speed here.
//
// Dtypes: activations f32, bf16 or f16; weights f32, bf16 or f16 whatever the activations are.
// Every op computes in f32 (statistics in double) on f32 rows staged by src/backend/cpu_staging.hpp:
// an f32 operand is used in place (with its row stride), any other is converted into a dense f32
// scratch buffer; an output that is not f32 is computed into scratch and rounded once when it is
// stored, honouring its row stride. These stores are the rounding points the bf16 CPU mode shares
// with the GPU. Staging happens before any output is written, so every op is safe in place
// whatever the dtype or stride.
//
// The scratch buffers belong to the backend and only grow: after the first call at a given size
// an op allocates nothing, and no op ever creates a Storage. A backend (like a stream) is used by
// one host thread at a time.
#pragma once

#include "src/backend/backend.hpp"
#include "src/backend/cpu_staging.hpp"

namespace fresco {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::cpu; }
  bool supports(const OpDesc& op) const override;

  Stream& stream() override { return stream_; }
  std::shared_ptr<Storage> alloc_storage(size_t bytes) override { return Storage::host(bytes); }

  void copy(const Tensor& src, const Tensor& dst) override;

  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
              Epilogue epilogue = Epilogue::none, const Tensor* gate = nullptr) override;
  void layer_norm(const Tensor& x, float eps, const Tensor& y) override;
  void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                const Tensor& y) override;
  void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                     const Tensor& y) override;
  void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps, const Tensor& y) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) override;
  void rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                     const Tensor& sin, const Tensor& y) override;
  void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                     const Tensor& lse) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                 const Tensor& lse) override;
  void attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                       const Tensor& lse) override;
  void gelu_tanh(const Tensor& x, const Tensor& y) override;
  void silu(const Tensor& x, const Tensor& y) override;
  void gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void subtract(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void affine(const Tensor& x, float a, float b, const Tensor& y) override;
  void axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) override;
  void timestep_embedding(const Tensor& t, const Tensor& out) override;
  void pack_latent(const Tensor& latent, const Tensor& tokens) override;
  void unpack_latent(const Tensor& tokens, const Tensor& latent) override;
  void count_nonfinite(const Tensor& x, const Tensor& count) override;
  void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) override;

  void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
              const Tensor& y) override;
  void group_sums(const Tensor& x, int groups, const Tensor& sums) override;
  void group_norm(const Tensor& x, const Tensor& sums, double count, float eps,
                  const Tensor& weight, const Tensor& bias, const Tensor& y) override;
  void upsample_nearest(const Tensor& x, const Tensor& y) override;
  void transpose(const Tensor& x, const Tensor& y) override;
  void quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) override;
  void dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) override;
  void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                  const Tensor* bias, const Tensor& y, Epilogue epilogue = Epilogue::none,
                  const Tensor* gate = nullptr) override;
  void norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, const Tensor& q,
                         const Tensor& scales) override;
  void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) override;
  void layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         const Tensor& y) override;
  void multiply(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void quick_gelu(const Tensor& x, const Tensor& y) override;
  void gelu_erf(const Tensor& x, const Tensor& y) override;
  void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                      float scale, const Tensor& o) override;  // src/backend/cpu_attention.cpp
  void fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                   const Tensor& y) override;  // src/backend/cpu_random.cpp

 private:
  // y = epilogue(row_scale[m] col_scale[n] (x W^T) + b) (scales null: x W^T + b): the product
  // and epilogue of linear and linear_fp8. in: f32 rows [M, K]; w: dense f32 [N, K].
  void product_epilogue(const cpu::Rows& in, const float* w, int64_t N, const Tensor* bias,
                        const float* row_scale, const float* col_scale, Epilogue epilogue,
                        const Tensor* gate, const Tensor& y);

  // y = (1 + scale) * x' + shift with x' = layer_norm(x) when `normalize`, else x itself: the
  // one loop of modulate and norm_modulate (rounded once at the store).
  void modulate_rows(const Tensor& x, const Tensor& shift, const Tensor& scale, bool normalize,
                     float eps, const Tensor& y, const char* op);
  // Its rows in f32, before the store's rounding: out = (1 + sc) * x' + sh.
  static void modulated(const cpu::Rows& in, const float* sh, const float* sc, bool normalize, float eps,
                        const cpu::Rows& out);

  // o = softmax(scale q k^T + bias, causal mask) v per head, with lse (nullable) of the scaled
  // and biased scores: the one loop of attention, attention_bias and attention_fp8
  // (src/backend/cpu_attention.cpp). fp8: q, k, v and P rounded to e4m3 as attention_fp8 does.
  struct ScoreRule {
    float scale;
    const float* bias = nullptr;  // [H, Lq, Lk] or null
    bool causal = false;
    bool fp8 = false;
  };
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, const ScoreRule& rule, const Tensor& o, float* lse);

  // y = f(a, b) element-wise, rounded once at the store: the loop of add and subtract.
  template <typename F>
  void binary(const Tensor& a, const Tensor& b, const Tensor& y, const char* op, F f);

  HostStream stream_;
  cpu::Scratch scratch_;
};

}  // namespace fresco
