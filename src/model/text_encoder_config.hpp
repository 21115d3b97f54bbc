// Hyper-parameters and weight tables of the FLUX.1 text encoders (docs/text-encoders.md): the
// T5 v1.1 encoder (preset t5-xxl, and t5-tiny for tests) and the CLIP text model (clip-l, and
// clip-tiny for tests). Checkpoint keys are those of the Hugging Face checkpoints
// (T5EncoderModel, CLIPTextModel).
#pragma once

#include <string>
#include <vector>

#include "src/model/flux_weights.hpp"

namespace fresco {

struct T5Config {
  std::string name;
  int vocab = 32128;
  int d_model = 4096;
  int heads = 64;
  int head_dim = 64;       // d_kv; the attention is heads * head_dim wide
  int d_ff = 10240;        // the gated FFN's width
  int layers = 24;
  int buckets = 32;        // relative_attention_num_buckets (half per direction)
  int max_distance = 128;  // relative_attention_max_distance
  float eps = 1e-6f;

  int inner() const { return heads * head_dim; }
};

struct ClipTextConfig {
  std::string name;
  int vocab = 49408;
  int width = 768;
  int heads = 12;
  int layers = 12;
  int mlp = 3072;
  int positions = 77;
  float eps = 1e-5f;

  int head_dim() const { return width / heads; }
};

bool is_t5_preset(const std::string& name);
std::vector<std::string> t5_preset_names();
T5Config t5_preset(const std::string& name);  // InputError listing the known names
std::vector<WeightSpec> t5_weight_specs(const T5Config& config);

bool is_clip_preset(const std::string& name);
std::vector<std::string> clip_preset_names();
ClipTextConfig clip_preset(const std::string& name);
std::vector<WeightSpec> clip_weight_specs(const ClipTextConfig& config);

// The bucket of the relative position `key - query` in T5's bidirectional position bias: half
// the buckets per direction, the first half of those exact, the rest logarithmic up to
// max_distance (docs/text-encoders.md).
int t5_relative_bucket(int64_t relative, int buckets, int max_distance);

}  // namespace fresco
