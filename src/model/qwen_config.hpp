// Hyper-parameters of the Qwen-Image transformer, its presets and weight table
// (docs/qwen-image.md, "Hyper-parameters" and "Weight names").
#pragma once

#include <array>
#include <string>
#include <vector>

#include "src/model/flux_config.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/step_flops.hpp"

namespace fresco {

struct QwenConfig {
  std::string name;
  int hidden = 3072;           // d = heads x head dim
  int heads = 24;              // H; D = d / H = 128
  int layers = 60;             // dual-stream blocks
  int mlp_ratio = 4;           // m = 4d
  int in_channels = 64;        // packed latent tokens: 16 latent channels x 2x2
  int out_channels = 16;       // latent channels of the velocity (proj_out: 2x2x16 = 64)
  int context_in_dim = 3584;   // Qwen2.5-VL hidden states
  std::array<int, 3> axes_dim{16, 56, 56};  // MSRoPE: frame, height, width
  double theta = 10000.0;
  int default_steps = 50;

  int head_dim() const { return hidden / heads; }
  int mlp_hidden() const { return mlp_ratio * hidden; }
  int out_token_channels() const { return 4 * out_channels; }
  int latent_channels() const { return in_channels / 4; }
  void validate() const;  // InputError when the numbers are inconsistent
};

std::vector<std::string> qwen_preset_names();
bool is_qwen_preset(const std::string& name);
// The preset of that name, or InputError listing the known names.
QwenConfig qwen_preset(const std::string& name);

// Every tensor of the preset with the diffusers checkpoint's names, in checkpoint order.
std::vector<WeightSpec> qwen_weight_specs(const QwenConfig& config);
int64_t qwen_parameter_count(const QwenConfig& config);

// One forward's FLOPs (docs/qwen-image.md, "FLOPs of one step"): per block 24 d^2 L token-linear
// FLOPs and 4 L^2 d attention FLOPs, plus img_in, txt_in, proj_out and the vector path.
StepFlops qwen_step_flops(const QwenConfig& config, int64_t txt_tokens, int64_t img_tokens);

// The performance model and the memory estimate of the runtime take a FluxConfig
// (docs/architecture.md, "A new model family"): a Qwen-Image block has exactly a FLUX double
// block's linears, norms and modulations, so its stand-in is a FLUX shape of `layers` double
// blocks, no single blocks, no guidance embedder and no pooled vector, named after the Qwen
// preset. Used for those estimates and the prompt/input widths only, never to build a model.
FluxConfig qwen_cost_analog(const QwenConfig& config);

}  // namespace fresco
