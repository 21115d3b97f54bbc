#include "src/backend/backend.hpp"

namespace fresco {

const char* op_name(Op op) {
  switch (op) {
    case Op::linear: return "linear";
    case Op::layer_norm: return "layer_norm";
    case Op::modulate: return "modulate";
    case Op::rms_norm_heads: return "rms_norm_heads";
    case Op::rope: return "rope";
    case Op::attention: return "attention";
    case Op::attention_merge: return "attention_merge";
    case Op::gelu_tanh: return "gelu_tanh";
    case Op::silu: return "silu";
    case Op::gated_residual: return "gated_residual";
    case Op::add: return "add";
    case Op::axpy: return "axpy";
    case Op::timestep_embedding: return "timestep_embedding";
    case Op::concat_rows: return "concat_rows";
    case Op::split_rows: return "split_rows";
    case Op::copy_columns: return "copy_columns";
    case Op::paste_columns: return "paste_columns";
    case Op::pack_latent: return "pack_latent";
    case Op::unpack_latent: return "unpack_latent";
    case Op::convert: return "convert";
    case Op::conv2d: return "conv2d";
    case Op::group_norm: return "group_norm";
    case Op::upsample_nearest: return "upsample_nearest";
    case Op::transpose: return "transpose";
    case Op::count: break;
  }
  return "?";
}

std::vector<Op> all_ops() {
  std::vector<Op> ops;
  for (int i = 0; i < int(Op::count); ++i) ops.push_back(Op(i));
  return ops;
}

std::vector<std::unique_ptr<Backend>> available_backends() {
  std::vector<std::unique_ptr<Backend>> list;
  list.push_back(make_cpu_backend());
  // The CUDA backend registers here once it exists (issue: CUDA backend).
  return list;
}

}  // namespace fresco
