// T5's tokenizer: SentencePiece (Debian's libsentencepiece) over a checkpoint's `spiece.model`
// (`tokenizer_2/spiece.model` in the diffusers layout of FLUX.1), with the end-of-sequence id
// appended and padding to a fixed length, as the FLUX pipelines call it: dev pads to 512 tokens,
// schnell to 256; a longer prompt keeps its first max_tokens - 1 ids and the end of sequence.
//
// The ids are SentencePiece's own encoding (what transformers' T5Tokenizer gives, the one Black
// Forest Labs' reference code uses; diffusers' T5TokenizerFast agrees on ordinary text). Not
// done: text that spells a special token ("</s>", "<pad>", "<unk>", "<extra_id_0>") is encoded
// as plain characters; transformers would turn it into that token's single id.
// docs/text-encoders.md, "Tokenizers".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace fresco {

struct T5Tokens {
  std::vector<int32_t> ids;  // [max_tokens]: the pieces, EOS, then the pad id
  int64_t length = 0;        // real tokens, EOS included: the attention mask's ones
};

class T5Tokenizer {
 public:
  static constexpr int64_t kDevTokens = 512;      // FLUX.1-dev's max_sequence_length
  static constexpr int64_t kSchnellTokens = 256;  // FLUX.1-schnell's

  // Loads `spiece.model`. InputError naming the path when it is missing, unreadable or not a
  // SentencePiece model, or when the model has no end-of-sequence or padding piece.
  explicit T5Tokenizer(const std::string& spiece_model);
  ~T5Tokenizer();
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  T5Tokenizer(const T5Tokenizer&) = delete;
  T5Tokenizer& operator=(const T5Tokenizer&) = delete;

  // `text` (UTF-8; InputError otherwise) as exactly max_tokens ids (max_tokens >= 1).
  T5Tokens encode(std::string_view text, int64_t max_tokens) const;
  // The pieces' ids alone: no EOS, no padding, no truncation.
  std::vector<int32_t> pieces(std::string_view text) const;

  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int64_t vocab_size() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;  // the one owner
  int32_t eos_id_ = -1, pad_id_ = -1;
};

}  // namespace fresco
