// The CPU reference backend: f32 (plus dtype conversion to and from bf16/f16), plain loops threaded with OpenMP, matrix products
// through CBLAS (OpenBLAS). This backend *is* the specification the other backends are
// tested against, so clarity wins over speed here.
#pragma once

#include "src/backend/backend.hpp"

namespace fresco {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::cpu; }
  bool supports(Op op, DType dtype) const override;

  Tensor alloc(const Shape& shape, DType dtype) override { return Tensor(shape, dtype); }
  Tensor upload(const Tensor& host) override { return host; }
  Tensor download(const Tensor& t) override { return t; }

  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias,
              const Tensor& y) override;
  void layer_norm(const Tensor& x, float eps, const Tensor& y) override;
  void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                const Tensor& y) override;
  void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps, const Tensor& y) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                 const Tensor& lse) override;
  void attention_merge(const Tensor& o, const Tensor& lse, const Tensor& o_part,
                       const Tensor& lse_part) override;
  void gelu_tanh(const Tensor& x, const Tensor& y) override;
  void silu(const Tensor& x, const Tensor& y) override;
  void gated_residual(const Tensor& x, const Tensor& gate, const Tensor& y) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void axpy(float alpha, const Tensor& x, const Tensor& y) override;
  void timestep_embedding(float t, const Tensor& out) override;
  void concat_rows(std::span<const Tensor> parts, const Tensor& out) override;
  void split_rows(const Tensor& in, std::span<const Tensor> parts) override;
  void copy_columns(const Tensor& src, int64_t col0, const Tensor& dst) override;
  void paste_columns(const Tensor& src, const Tensor& dst, int64_t col0) override;
  void pack_latent(const Tensor& latent, const Tensor& tokens) override;
  void unpack_latent(const Tensor& tokens, const Tensor& latent) override;
  void convert(const Tensor& x, const Tensor& y) override;
  void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
              const Tensor& y) override;
  std::vector<double> group_sums(const Tensor& x, int groups) override;
  void group_norm(const Tensor& x, const std::vector<double>& sums, double count, float eps,
                  const Tensor& weight, const Tensor& bias, const Tensor& y) override;
  void upsample_nearest(const Tensor& x, const Tensor& y) override;
  void transpose(const Tensor& x, const Tensor& y) override;
};

}  // namespace fresco
