// The prompt batch file (docs/file-formats.md, "Prompt batch"): /prompts/{i}/txt
// [Ltxt, context_in_dim], /prompts/{i}/y [vec_in_dim] (absent for a model without a pooled
// vector, Qwen-Image: read as an empty [0]), i = 0..N-1. Attributes seed, width,
// height, steps, guidance may sit on the root (batch defaults; a batch seed S gives image i
// the seed S + i) or on /prompts/{i} (that image only); the command line supplies what neither
// gives.
//
// The format only: checking the embeddings' widths against a model and drawing random
// prompts are src/model/model_inputs.hpp's business.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/core/tensor.hpp"

namespace fresco {

inline constexpr const char* kPromptsFormat = "fresco-prompts";
inline constexpr int64_t kPromptsFormatVersion = 1;

// Settings of one image; unset fields fall back to the command line.
struct PromptSettings {
  std::optional<int64_t> seed, width, height, steps;
  std::optional<double> guidance;
  std::optional<std::string> text;  // the prompt's text (attribute `text`), for provenance only
};

struct PromptEntry {
  Tensor txt;  // f32 [Ltxt, context_in_dim] (any stored float type is converted on read)
  Tensor y;    // f32 [vec_in_dim]; [0] when the file has no /y
  PromptSettings settings;  // per-prompt attributes over the root's
  // SDXL's optional members (docs/file-formats.md; undefined where the file has none): the
  // negative prompt's txt and y (classifier-free guidance) and the six size/crop numbers [6].
  Tensor negative_txt{}, negative_y{}, size_cond{};
};

class PromptsFile {
 public:
  // Opens the batch and checks its structure (format, contiguous indices) up front.
  PromptsFile(const std::string& path);
  int64_t size() const { return count_; }
  const std::string& path() const { return path_; }
  // Shape of /prompts/{i}/txt (read on open) and of /prompts/{i}/y (read now; InputError when
  // the dataset is missing). No data is read.
  const Shape& txt_shape(int64_t index) const { return txt_shapes_.at(size_t(index)); }
  Shape y_shape(int64_t index) const;
  // Text tokens of prompt i (from the shapes read on open).
  int64_t txt_len(int64_t index) const;
  // The attributes of prompt i over the batch's, the batch seed offset by i (no data read).
  PromptSettings settings(int64_t index) const;
  // Reads prompt i (validate_prompts() of src/model/model_inputs.hpp first).
  PromptEntry read(int64_t index) const;

 private:
  std::string path_;
  int64_t count_ = 0;
  std::vector<Shape> txt_shapes_;  // shape of /prompts/{i}/txt, read once on open
};

// Writes a prompt batch for preset `model`, published atomically: the format attributes,
// model and the batch's settings on the root, then prompts 0..count-1 from make(i) (their
// txt, y and the settings set in the entry, on /prompts/{i}). One prompt is in memory at a time.
void write_prompts_file(const std::string& path, const std::string& model,
                        const PromptSettings& batch, int64_t count,
                        const std::function<PromptEntry(int64_t)>& make);

}  // namespace fresco
