// The prompt batch file (docs/file-formats.md, "Prompt batch"): /prompts/{i}/txt
// [Ltxt, context_in_dim], /prompts/{i}/y [vec_in_dim], i = 0..N-1. Attributes seed, width,
// height, steps, guidance may sit on the root (batch defaults; a batch seed S gives image i
// the seed S + i) or on /prompts/{i} (that image only); the command line supplies what neither
// gives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/core/tensor.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

inline constexpr const char* kPromptsFormat = "fresco-prompts";
inline constexpr int64_t kPromptsFormatVersion = 1;

// Settings of one image; unset fields fall back to the command line.
struct PromptSettings {
  std::optional<int64_t> seed, width, height, steps;
  std::optional<double> guidance;
};

struct PromptEntry {
  Tensor txt;  // [Ltxt, context_in_dim]
  Tensor y;    // [vec_in_dim]
  PromptSettings settings;  // per-prompt attributes over the root's
};

class PromptsFile {
 public:
  // Opens the batch and checks its structure (format, contiguous indices) up front.
  PromptsFile(const std::string& path);
  int64_t size() const { return count_; }
  const std::string& path() const { return path_; }
  // Checks every prompt's dataset shapes against the model (reads no data); InputError
  // naming the first bad dataset.
  void validate(const FluxConfig& config) const;
  // Text tokens of prompt i (from the shapes read on open).
  int64_t txt_len(int64_t index) const;
  // The attributes of prompt i over the batch's, the batch seed offset by i (no data read).
  PromptSettings settings(int64_t index) const;
  // Reads prompt i (validate() first).
  PromptEntry read(int64_t index) const;

 private:
  std::string path_;
  int64_t count_ = 0;
  std::vector<Shape> txt_shapes_;  // shape of /prompts/{i}/txt, read once on open
};

struct PromptBatchSpec {
  int64_t count = 4;
  int64_t txt_len = 64;
  uint64_t seed = 0;  // of the random embeddings and the images' noise (image i: seed + i)
  int64_t width = 256, height = 256, steps = 0;  // steps 0: the preset's default
  double guidance = 0.0;
};

// Random embeddings (standard normal) for tests and demos, published atomically.
void write_random_prompts(const std::string& path, const FluxConfig& config,
                          const PromptBatchSpec& spec);

}  // namespace fresco
