#include "src/model/prompt_encoder.hpp"

#include <chrono>

#include "io/weights_file.hpp"
#include "src/core/error.hpp"
#include "src/model/weights_io.hpp"

namespace fresco {
namespace {

// The preset a weights file holds, which must be one of `kind`'s; `full_size` for random:SEED.
std::string preset_of(const std::string& path, bool (*is_kind)(const std::string&), const std::string& kind,
                      const std::string& full_size) {
  if (random_weights_seed(path)) return full_size;
  const std::string model = weights_file_model(path);
  require_input(is_kind(model), path + " holds weights of " + model + ", not of a " + kind + " encoder");
  return model;
}

std::optional<DType> conversion(DType compute) {
  return compute == DType::f32 ? std::nullopt : std::optional<DType>(compute);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t bytes_of(const ModelWeights& weights, const std::vector<WeightSpec>& specs) {
  int64_t n = 0;
  for (const auto& s : specs) n += int64_t(weights.get(s.name).bytes());
  return n;
}

}  // namespace

PromptEncoder::PromptEncoder(const PromptEncoderFiles& files, int64_t t5_tokens, Backend& backend, DType compute)
    : backend_(backend),
      t5_tokens_(t5_tokens),
      t5_tokenizer_(files.tokenizers + "/tokenizer_2/spiece.model"),
      clip_tokenizer_(files.tokenizers + "/tokenizer/vocab.json", files.tokenizers + "/tokenizer/merges.txt") {
  require_input(t5_tokens >= 1, "the T5 token count must be at least 1 (got " + std::to_string(t5_tokens) + ")");
  const std::string t5 = preset_of(files.t5_weights, is_t5_preset, "T5", "t5-xxl");
  const std::string clip = preset_of(files.clip_weights, is_clip_preset, "CLIP", "clip-l");
  const T5Config t5c = t5_preset(t5);
  const ClipTextConfig clipc = clip_preset(clip);
  require_input(t5_tokenizer_.vocab_size() <= t5c.vocab,
                t5_tokenizer_.path() + " has " + std::to_string(t5_tokenizer_.vocab_size()) + " pieces, more than " +
                    t5 + "'s " + std::to_string(t5c.vocab) + " embeddings");
  require_input(clip_tokenizer_.vocab_size() <= clipc.vocab,
                files.tokenizers + "/tokenizer/vocab.json has " + std::to_string(clip_tokenizer_.vocab_size()) +
                    " tokens, more than " + clip + "'s " + std::to_string(clipc.vocab) + " embeddings");
  const auto start = std::chrono::steady_clock::now();
  ModelWeights t5w = load_weights(files.t5_weights, t5, backend, conversion(compute));
  ModelWeights clipw = load_weights(files.clip_weights, clip, backend, conversion(compute));
  backend.synchronize();
  times_.load_s = seconds_since(start);
  weight_bytes_ = bytes_of(t5w, t5_weight_specs(t5c)) + bytes_of(clipw, clip_weight_specs(clipc));
  t5_ = std::make_unique<T5Encoder>(t5c, std::move(t5w), backend, compute);
  clip_ = std::make_unique<ClipTextEncoder>(clipc, std::move(clipw), backend, compute);
}

PromptEntry PromptEncoder::encode(const std::string& text) {
  const T5Tokens t5_ids = t5_tokenizer_.encode(text, t5_tokens_);
  // CLIP's context: 77 positions for clip-l (the tokenizer's own length), fewer for test sizes.
  const ClipTokens clip_ids = clip_tokenizer_.encode(text, clip_->config().positions);
  PromptEntry entry;
  backend_.synchronize();
  auto start = std::chrono::steady_clock::now();
  const Tensor txt = t5_->encode(t5_ids.ids);
  backend_.synchronize();
  times_.t5_ms = 1e3 * seconds_since(start);
  entry.txt = backend_.download(txt).to_f32();
  start = std::chrono::steady_clock::now();
  const ClipTextOutput clip_out = clip_->encode(clip_ids.ids, clip_ids.eot_index);
  backend_.synchronize();
  times_.clip_ms = 1e3 * seconds_since(start);
  entry.y = backend_.download(clip_out.pooled).to_f32();
  return entry;
}

}  // namespace fresco
