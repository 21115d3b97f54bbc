// Hyper-parameters of the FLUX.1 transformer and the named presets
// (spec: ../shared/spec/flux-transformer.md, "Hyper-parameters").
#pragma once

#include <array>
#include <string>
#include <vector>

namespace fresco {

struct FluxConfig {
  std::string name;
  int hidden = 3072;          // d
  int heads = 24;             // H; head dim D = d / H
  int depth = 19;             // double-stream blocks
  int depth_single = 38;      // single-stream blocks
  int mlp_ratio = 4;          // m = mlp_ratio * d
  int in_channels = 64;       // 16 latent channels x 2x2 patch
  int context_in_dim = 4096;  // T5 width
  int vec_in_dim = 768;       // CLIP pooled width
  std::array<int, 3> axes_dim{16, 56, 56};
  double theta = 10000.0;
  bool guidance_embed = true;
  bool time_shift = true;     // the sampler's resolution-dependent shift (dev yes, schnell no)
  int default_steps = 28;
  double default_guidance = 3.5;

  int head_dim() const { return hidden / heads; }
  int mlp_hidden() const { return mlp_ratio * hidden; }
  int latent_channels() const { return in_channels / 4; }
  // Throws InputError when the numbers are inconsistent (sum(axes) != D, odd axes, ...).
  void validate() const;
};

// The preset of that name, or InputError listing the known names.
FluxConfig flux_preset(const std::string& name);
std::vector<std::string> flux_preset_names();

}  // namespace fresco
