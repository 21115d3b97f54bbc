// Inputs and output of `fresco forward` (docs/file-formats.md, "Forward inputs/outputs").
// IN.h5: /img f32 [Limg, in_channels], /txt f32 [Ltxt, context_in_dim], /y f32 [vec_in_dim];
// root attributes t, guidance (float), grid_h, grid_w (int; Limg = grid_h * grid_w).
// OUT.h5: /velocity f32 [Limg, in_channels].
#pragma once

#include <string>

#include "src/core/tensor.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

struct ForwardInputs {
  Tensor img;  // [Limg, in_channels]
  Tensor txt;  // [Ltxt, context_in_dim]
  Tensor y;    // [vec_in_dim]
  double t = 1.0;
  double guidance = 0.0;
  int64_t grid_h = 0, grid_w = 0;
};

// Reads and checks every dataset and attribute against the model; InputError naming the file
// and the object otherwise.
ForwardInputs read_forward_inputs(const std::string& path, const FluxConfig& config);
void write_forward_inputs(const std::string& path, const ForwardInputs& in);
void write_velocity(const std::string& path, const Tensor& velocity);

}  // namespace fresco
