// Hyper-parameters of the FLUX.1 autoencoder's decoder and its presets
// (spec: ../shared/spec/flux-vae-decoder.md), and its weight table (keys `decoder.*`).
#pragma once

#include <string>
#include <vector>

#include "src/model/flux_weights.hpp"

namespace fresco {

struct VaeConfig {
  std::string name;
  int ch = 128;
  std::vector<int> ch_mult{1, 2, 4, 4};
  int num_res_blocks = 2;  // Resnets per level: num_res_blocks + 1
  int z_channels = 16;
  int out_ch = 3;
  int groups = 32;         // GroupNorm groups
  double scale_factor = 0.3611;
  double shift_factor = 0.1159;

  int levels() const { return int(ch_mult.size()); }
  int width(int level) const { return ch * ch_mult[size_t(level)]; }
  int upscale() const { return 1 << (levels() - 1); }  // pixels per latent row
};

// flux-ae (FLUX.1's), ae-small (CPU demo: ch 32, same levels), ae-tiny (tests: ch 32, 2 levels).
bool is_vae_preset(const std::string& name);
VaeConfig vae_preset(const std::string& name);
std::vector<std::string> vae_preset_names();
std::vector<WeightSpec> vae_weight_specs(const VaeConfig& config);

}  // namespace fresco
