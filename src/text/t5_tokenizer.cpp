// T5's tokenizer through libsentencepiece (see t5_tokenizer.hpp).
#include "src/text/t5_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "src/core/error.hpp"
#include "src/text/unicode.hpp"

namespace fresco {

T5Tokenizer::T5Tokenizer(const std::string& spiece_model)
    : path_(spiece_model), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec)) {
    throw InputError(path_ + " is a folder; T5's tokenizer reads its spiece.model file (in the "
                             "diffusers layout, tokenizer_2/spiece.model)");
  }
  if (!std::ifstream(path_, std::ios::binary)) {
    throw InputError("cannot open T5's SentencePiece model " + path_ +
                     " (spiece.model; in the diffusers layout, tokenizer_2/spiece.model)");
  }
  const auto status = processor_->Load(path_);
  if (!status.ok()) {
    throw InputError(path_ + " is not a SentencePiece model (T5's spiece.model): " +
                     status.ToString());
  }
  eos_id_ = processor_->eos_id();
  pad_id_ = processor_->pad_id();
  if (eos_id_ < 0) throw InputError(path_ + ": the SentencePiece model has no end-of-sequence piece");
  if (pad_id_ < 0) throw InputError(path_ + ": the SentencePiece model has no padding piece");
}

T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

int64_t T5Tokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::vector<int32_t> T5Tokenizer::pieces(std::string_view text) const {
  decode_utf8(text, "prompt");  // refuses what is not UTF-8 (SentencePiece would replace it)
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw InputError(path_ + ": SentencePiece cannot encode the prompt: " + status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

T5Tokens T5Tokenizer::encode(std::string_view text, int64_t max_tokens) const {
  require_input(max_tokens >= 1, "T5's token count must be at least 1 (got " +
                                     std::to_string(max_tokens) + ")");
  T5Tokens out;
  out.ids = pieces(text);
  // truncation=True keeps room for the end of sequence, which is always last
  if (static_cast<int64_t>(out.ids.size()) > max_tokens - 1) out.ids.resize(max_tokens - 1);
  out.ids.push_back(eos_id_);
  out.length = static_cast<int64_t>(out.ids.size());
  out.ids.resize(max_tokens, pad_id_);
  return out;
}

}  // namespace fresco
