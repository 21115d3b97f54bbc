// CLIP's tokenizer: the byte-level BPE of OpenAI's simple_tokenizer (and transformers'
// CLIPTokenizer) over a checkpoint's `vocab.json` and `merges.txt` (`tokenizer/` in the diffusers
// layout of FLUX.1), padded to 77 ids as the FLUX pipelines call it.
//
// What it does, in order: white space runs become one space and the ends are stripped; the text
// is lower-cased; CLIP's pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// splits it into words (each digit is a word of its own); a word's UTF-8 bytes map to printable
// characters (bytes_to_unicode), its last one carries the end-of-word suffix `</w>`, and the
// merges of merges.txt apply by rank; vocab.json gives the ids. The sequence is
// <|startoftext|> words <|endoftext|>, truncated to 77 with the end of text kept last, padded
// with <|endoftext|> (the pad token of FLUX.1's CLIPTokenizer, openai/clip-vit-large-patch14's).
// The two special tokens' ids are read from vocab.json (49406 and 49407 in CLIP's), and the
// special tokens written inside a prompt are those tokens, as in the reference.
//
// Not done (docs/text-encoders.md, "Tokenizers"): ftfy's text repair and the HTML unescaping of
// OpenAI's basic_clean; lower-casing covers the blocks of unicode.hpp only (no final sigma);
// \p{L}/\p{N} come from a small table (unicode.hpp: combining marks of Indic scripts other than
// Devanagari count as letters, for instance). transformers without ftfy installed takes another
// path (BERT's BasicTokenizer: CJK ideographs split one by one, control characters dropped,
// NFC), which Fresco does not follow.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fresco {

struct ClipTokens {
  std::vector<int32_t> ids;  // [max_tokens]: BOS, the words' ids, EOS, then the pad id
  int64_t eot_index = 0;     // the first end-of-text id: where CLIP's pooled output is taken
  int64_t length = 0;        // BOS and EOS included, before padding
};

class ClipTokenizer {
 public:
  static constexpr int64_t kMaxTokens = 77;
  static constexpr const char* kBosToken = "<|startoftext|>";
  static constexpr const char* kEosToken = "<|endoftext|>";

  // Reads vocab.json and merges.txt (its first line the "#version: ..." header; at most 48894
  // merges are used, as transformers does). InputError naming the file when one is missing or
  // malformed, or when vocab.json lacks <|startoftext|>, <|endoftext|> or `pad_token`.
  ClipTokenizer(const std::string& vocab_json, const std::string& merges_txt,
                const std::string& pad_token = kEosToken);

  // `text` (UTF-8; InputError otherwise) as exactly max_tokens ids (max_tokens >= 2).
  ClipTokens encode(std::string_view text, int64_t max_tokens = kMaxTokens) const;
  // The words' ids alone: no BOS/EOS, no padding, no truncation.
  std::vector<int32_t> words(std::string_view text) const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  // The ids of one pre-tokenized word (its UTF-8 bytes); cached.
  std::vector<int32_t> bpe(const std::string& word) const;
  int32_t id_of(const std::string& piece) const;

  std::string vocab_path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> ranks_;  // "first second" -> merge rank
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::u32string byte_chars_;  // bytes_to_unicode: byte -> its printable character
  mutable std::mutex cache_mutex_;  // encode() is const and may run on several threads
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word -> ids
};

}  // namespace fresco
