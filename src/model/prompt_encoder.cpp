#include "src/model/prompt_encoder.hpp"

#include "io/weights_file.hpp"
#include "src/core/error.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {
namespace {

// The preset a weights file holds, which must be one of `kind`'s.
std::string preset_of(const std::string& path, bool (*is_kind)(const std::string&), const std::string& kind) {
  const std::string model = weights_file_model(path);
  require_input(is_kind(model), path + " holds weights of " + model + ", not of a " + kind + " encoder");
  return model;
}

std::optional<DType> conversion(DType compute) {
  return compute == DType::f32 ? std::nullopt : std::optional<DType>(compute);
}

}  // namespace

PromptEncoder::PromptEncoder(const PromptEncoderFiles& files, int64_t t5_tokens, Backend& backend, DType compute)
    : backend_(backend),
      t5_tokens_(t5_tokens),
      t5_tokenizer_(files.tokenizers + "/tokenizer_2/spiece.model"),
      clip_tokenizer_(files.tokenizers + "/tokenizer/vocab.json", files.tokenizers + "/tokenizer/merges.txt") {
  require_input(t5_tokens >= 1, "the T5 token count must be at least 1 (got " + std::to_string(t5_tokens) + ")");
  const std::string t5 = preset_of(files.t5_weights, is_t5_preset, "T5");
  const std::string clip = preset_of(files.clip_weights, is_clip_preset, "CLIP");
  const T5Config t5c = t5_preset(t5);
  const ClipTextConfig clipc = clip_preset(clip);
  require_input(t5_tokenizer_.vocab_size() <= t5c.vocab,
                t5_tokenizer_.path() + " has " + std::to_string(t5_tokenizer_.vocab_size()) + " pieces, more than " +
                    t5 + "'s " + std::to_string(t5c.vocab) + " embeddings");
  require_input(clip_tokenizer_.vocab_size() <= clipc.vocab,
                files.tokenizers + "/tokenizer/vocab.json has " + std::to_string(clip_tokenizer_.vocab_size()) +
                    " tokens, more than " + clip + "'s " + std::to_string(clipc.vocab) + " embeddings");
  t5_ = std::make_unique<T5Encoder>(t5c, load_weights(files.t5_weights, t5, backend, conversion(compute)), backend,
                                    compute);
  clip_ = std::make_unique<ClipTextEncoder>(
      clipc, load_weights(files.clip_weights, clip, backend, conversion(compute)), backend, compute);
}

PromptEntry PromptEncoder::encode(const std::string& text) {
  const T5Tokens t5_ids = t5_tokenizer_.encode(text, t5_tokens_);
  // CLIP's context: 77 positions for clip-l (the tokenizer's own length), fewer for test sizes.
  const ClipTokens clip_ids = clip_tokenizer_.encode(text, clip_->config().positions);
  PromptEntry entry;
  entry.txt = backend_.download(t5_->encode(t5_ids.ids)).to_f32();
  const ClipTextOutput clip_out = clip_->encode(clip_ids.ids, clip_ids.eot_index);
  entry.y = backend_.download(clip_out.pooled).to_f32();
  return entry;
}

}  // namespace fresco
