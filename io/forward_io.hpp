// Inputs and output of `fresco forward` (docs/file-formats.md, "Forward inputs/outputs").
// IN.h5: /img f32 [Limg, in_channels], /txt f32 [Ltxt, context_in_dim], /y f32 [vec_in_dim];
// root attributes t, guidance (float), grid_h, grid_w (int; Limg = grid_h * grid_w).
// OUT.h5: /velocity f32 [Limg, in_channels].
//
// The format only: the widths a model expects are checked by read_forward_inputs of
// src/model/model_inputs.hpp.
#pragma once

#include <string>

#include "src/core/tensor.hpp"

namespace fresco {

struct ForwardInputs {
  Tensor img;  // [Limg, in_channels]
  Tensor txt;  // [Ltxt, context_in_dim]
  Tensor y;    // [vec_in_dim]; [0] when the file has no /y (Qwen-Image: no pooled vector)
  double t = 1.0;
  double guidance = 0.0;
  int64_t grid_h = 0, grid_w = 0;
};

// Reads the attributes and datasets as they are stored (any float type, converted to f32);
// InputError naming the file and the object when one is missing or of the wrong kind, or the
// grid is not positive. Shapes are not checked against a model.
ForwardInputs read_forward_file(const std::string& path);
// Writes the inputs (tensors in their dtype), published atomically.
void write_forward_inputs(const std::string& path, const ForwardInputs& in);
// Writes /velocity as f32 whatever the velocity's dtype, published atomically.
void write_velocity(const std::string& path, const Tensor& velocity);

}  // namespace fresco
