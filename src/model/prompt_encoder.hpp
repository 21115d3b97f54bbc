// Prompt text to FLUX.1's conditioning (docs/text-encoders.md): T5's tokens and last hidden
// state (`txt` [max tokens, d_model]) and CLIP's tokens and pooled output (`y` [width]), from a
// T5 and a CLIP weights file and the tokenizer files in diffusers' layout.
#pragma once

#include <memory>
#include <string>

#include "io/prompts_file.hpp"
#include "src/backend/backend.hpp"
#include "src/model/clip_text.hpp"
#include "src/model/t5_encoder.hpp"
#include "src/text/clip_tokenizer.hpp"
#include "src/text/t5_tokenizer.hpp"

namespace fresco {

struct PromptEncoderFiles {
  std::string t5_weights;    // fresco-weights of a T5 preset (t5-xxl, t5-tiny), or random:SEED
                             // for t5-xxl's random weights made on the device (benchmarks)
  std::string clip_weights;  // fresco-weights of a CLIP preset (clip-l, clip-tiny), or random:SEED
                             // for clip-l's
  std::string tokenizers;    // a folder with tokenizer_2/spiece.model, tokenizer/vocab.json and
                             // tokenizer/merges.txt (FLUX.1's Hugging Face layout)
};

class PromptEncoder {
 public:
  // Loads both encoders onto `backend` (weights converted to `compute`, f32 or bf16) and both
  // tokenizers. InputError when a file is missing or of another model, or when a tokenizer has
  // more ids than its encoder's vocabulary. t5_tokens: T5's padded length (512 for FLUX.1-dev,
  // 256 for schnell).
  PromptEncoder(const PromptEncoderFiles& files, int64_t t5_tokens, Backend& backend, DType compute);

  // txt [t5_tokens, d_model] and y [width], f32 host tensors; settings empty.
  PromptEntry encode(const std::string& text);

  // Where the time goes (host wall clock; each encoder's run ends with a synchronize, before
  // its output is copied to the host): loading both encoders, and each encoder's last run.
  struct Times {
    double load_s = 0;
    double t5_ms = 0, clip_ms = 0;
  };
  const Times& times() const { return times_; }
  // Bytes of both encoders' weights on the device.
  int64_t weight_bytes() const { return weight_bytes_; }

  const T5Config& t5_config() const { return t5_->config(); }
  const ClipTextConfig& clip_config() const { return clip_->config(); }

 private:
  Backend& backend_;
  int64_t t5_tokens_;
  T5Tokenizer t5_tokenizer_;
  ClipTokenizer clip_tokenizer_;
  std::unique_ptr<T5Encoder> t5_;
  std::unique_ptr<ClipTextEncoder> clip_;
  Times times_;
  int64_t weight_bytes_ = 0;
};

}  // namespace fresco
