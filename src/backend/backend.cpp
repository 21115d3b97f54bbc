#include "src/backend/backend.hpp"

#include "src/core/error.hpp"
#include "src/core/tuning.hpp"

#ifdef FRESCO_HAVE_CUDA
#include "cuda/cuda_backend.hpp"
#include "cuda/device_info.hpp"
#endif

namespace fresco {

const char* op_name(Op op) {
  switch (op) {
    case Op::linear: return "linear";
    case Op::layer_norm: return "layer_norm";
    case Op::modulate: return "modulate";
    case Op::norm_modulate: return "norm_modulate";
    case Op::rms_norm_heads: return "rms_norm_heads";
    case Op::rope: return "rope";
    case Op::rms_norm_rope: return "rms_norm_rope";
    case Op::attention: return "attention";
    case Op::attention_merge: return "attention_merge";
    case Op::attention_fp8: return "attention_fp8";
    case Op::gelu_tanh: return "gelu_tanh";
    case Op::silu: return "silu";
    case Op::gated_residual: return "gated_residual";
    case Op::add: return "add";
    case Op::subtract: return "subtract";
    case Op::affine: return "affine";
    case Op::axpy: return "axpy";
    case Op::timestep_embedding: return "timestep_embedding";
    case Op::copy: return "copy";
    case Op::pack_latent: return "pack_latent";
    case Op::unpack_latent: return "unpack_latent";
    case Op::count_nonfinite: return "count_nonfinite";
    case Op::change_sums: return "change_sums";
    case Op::conv2d: return "conv2d";
    case Op::group_sums: return "group_sums";
    case Op::group_norm: return "group_norm";
    case Op::upsample_nearest: return "upsample_nearest";
    case Op::transpose: return "transpose";
    case Op::fill_random: return "fill_random";
    case Op::quantize_rows: return "quantize_rows";
    case Op::dequantize_rows: return "dequantize_rows";
    case Op::linear_fp8: return "linear_fp8";
    case Op::norm_modulate_fp8: return "norm_modulate_fp8";
    case Op::gather_rows: return "gather_rows";
    case Op::layer_norm_affine: return "layer_norm_affine";
    case Op::multiply: return "multiply";
    case Op::quick_gelu: return "quick_gelu";
    case Op::gelu_erf: return "gelu_erf";
    case Op::attention_bias: return "attention_bias";
    case Op::count: break;
  }
  return "?";
}

std::vector<Op> all_ops() {
  std::vector<Op> ops;
  for (int i = 0; i < int(Op::count); ++i) ops.push_back(Op(i));
  return ops;
}

const char* epilogue_name(Epilogue epilogue) {
  switch (epilogue) {
    case Epilogue::none: return "none";
    case Epilogue::gelu_tanh: return "gelu_tanh";
    case Epilogue::gated_residual: return "gated_residual";
  }
  return "?";
}

std::string OpDesc::describe() const {
  std::string s = std::string(op_name(op)) + " in=" + dtype_name(in) + " w=" + dtype_name(weight) +
                  " out=" + dtype_name(out) + " acc=" + dtype_name(accum);
  if (epilogue != Epilogue::none) s += std::string(" ") + epilogue_name(epilogue);
  if (strided) s += " strided";
  return s;
}

Tensor Backend::alloc(const Shape& shape, DType dtype) {
  return Tensor::from_storage(alloc_storage(size_t(shape_numel(shape)) * dtype_size(dtype)), 0,
                              shape, dtype);
}

Tensor Backend::upload(const Tensor& host) {
  FRESCO_ASSERT(host.device() == Device::cpu, "upload of a device tensor " + host.describe());
  const Tensor t = alloc(host.shape(), host.dtype());
  copy(host, t);
  return t;
}

Tensor Backend::download(const Tensor& device_tensor) {
  FRESCO_ASSERT(device_tensor.device() == device(),
                "download of " + device_tensor.describe() + " from the " + name() + " backend");
  const Tensor host(device_tensor.shape(), device_tensor.dtype());
  copy(device_tensor, host);
  synchronize();
  return host;
}

std::vector<std::unique_ptr<Backend>> available_backends() {
  std::vector<std::unique_ptr<Backend>> list;
  list.push_back(make_cpu_backend());
#ifdef FRESCO_HAVE_CUDA
  if (!cuda::list_devices().empty()) list.push_back(make_cuda_backend(0));
#endif
  return list;
}

std::string default_backend_name() {
  if (tuning::is_set(tuning::Switch::default_backend)) {
    const std::string v = tuning::text(tuning::Switch::default_backend);
    if (v == "cpu" || v == "cuda") return v;
    throw InputError("FRESCO_DEFAULT_BACKEND must be cpu or cuda (got '" + v + "')");
  }
#ifdef FRESCO_HAVE_CUDA
  if (!cuda::list_devices().empty()) return "cuda";
#endif
  return "cpu";
}

std::unique_ptr<Backend> make_backend(const std::string& name, int device) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") {
#ifdef FRESCO_HAVE_CUDA
    const auto devices = cuda::list_devices();
    if (devices.empty())
      throw InputError("--backend cuda: no usable CUDA device (" + cuda::no_device_reason() + ")");
    return make_cuda_backend(device % int(devices.size()));
#else
    (void)device;
    throw InputError("--backend cuda: this build has no CUDA backend (no CUDA compiler was found, "
                     "or it was configured with -DFRESCO_CUDA=OFF); use --backend cpu");
#endif
  }
  throw InputError("--backend " + name + ": unknown backend (choices: cpu, cuda)");
}

}  // namespace fresco
