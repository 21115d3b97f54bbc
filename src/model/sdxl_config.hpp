// Hyper-parameters of the SDXL base U-Net and its presets (docs/sdxl.md), its weight table in
// diffusers' `unet/` names, and the FLOPs of one forward.
#pragma once

#include <string>
#include <vector>

#include "src/model/flux_weights.hpp"
#include "src/model/step_flops.hpp"

namespace fresco {

struct SdxlConfig {
  std::string name;
  std::vector<int> widths{320, 640, 1280};         // C_l of each level (block_out_channels)
  std::vector<int> transformer_layers{0, 2, 10};  // T_l; 0: a level without attention
  int head_dim = 64;                               // heads of level l: C_l / head_dim
  int layers_per_block = 2;                        // resnets per down level (up levels: one more)
  int groups = 32;                                 // GroupNorm groups (resnets and transformers)
  int latent_channels = 4;
  int context_dim = 2048;    // width of the text hidden states (cross-attention keys and values)
  int pooled_dim = 1280;     // width of the pooled text embedding
  int size_embed_dim = 256;  // sinusoid width of each of the six size/crop numbers
  int default_steps = 50;
  double default_guidance = 5.0;

  int levels() const { return int(widths.size()); }
  int width(int level) const { return widths[size_t(level)]; }
  int layers(int level) const { return transformer_layers[size_t(level)]; }
  int heads(int level) const { return width(level) / head_dim; }
  int time_proj_dim() const { return widths[0]; }        // sinusoid width of the timestep
  int time_embed_dim() const { return 4 * widths[0]; }   // e: [4 C_0]
  int add_embed_input() const { return pooled_dim + 6 * size_embed_dim; }
  int mid_layers() const { return transformer_layers.back(); }
  // Latent pixels per side of one lowest-level pixel: the latent's sides are multiples of it.
  int latent_multiple() const { return 1 << (levels() - 1); }
  // Channels of the skip popped by resnet j of up block u (level levels()-1-u), and that
  // resnet's input channels before the concatenation.
  int up_skip_channels(int u, int j) const;
  int up_input_channels(int u, int j) const;
  // Throws InputError when the numbers are inconsistent (widths not divisible by groups or the
  // head dim, a level 0 with attention...).
  void validate() const;
};

// sdxl (the published SDXL base U-Net) and sdxl-tiny (tests).
bool is_sdxl_preset(const std::string& name);
SdxlConfig sdxl_preset(const std::string& name);
std::vector<std::string> sdxl_preset_names();
// Every tensor of the preset, in diffusers' names and checkpoint order.
std::vector<WeightSpec> sdxl_weight_specs(const SdxlConfig& config);
int64_t sdxl_parameter_count(const SdxlConfig& config);

// The name of weight `key` (diffusers' name, Fresco's) in the original single-file checkpoint
// (Stability AI's sgm names, without its "model.diffusion_model." prefix): docs/sdxl.md's table.
std::string sdxl_single_file_name(const SdxlConfig& config, const std::string& key);

// One forward (one image, one branch of the guidance) at a latent of h x w pixels with a text of
// txt_tokens tokens: convolutions and token linears (2 M N K each: 2 Co Ci k^2 per output pixel)
// in token_linears, attention (4 n^2 C self, 4 n Ltxt C cross) in attention, the embeddings in
// vector_linears. The SDXL base at 1024² (latent 128², 77 tokens): docs/sdxl.md.
StepFlops sdxl_step_flops(const SdxlConfig& config, int64_t txt_tokens, int64_t latent_h, int64_t latent_w);

}  // namespace fresco
