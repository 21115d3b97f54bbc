// CLIP's byte-level BPE (see clip_tokenizer.hpp).
#include "src/text/clip_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "src/core/error.hpp"
#include "src/text/unicode.hpp"

namespace fresco {

namespace {

constexpr size_t kMaxMerges = 49152 - 256 - 2;  // transformers reads no more (CLIP has as many)
constexpr size_t kMaxCachedWords = 1 << 16;     // the cache starts again beyond this
constexpr std::string_view kEndOfWord = "</w>";

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open CLIP's " + std::string(what) + " " + path);
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw IoError("cannot read " + path);
  return s.str();
}

// bytes_to_unicode of GPT-2 and CLIP: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand
// for themselves, the others for U+0100, U+0101, ... in byte order.
std::u32string byte_characters() {
  std::u32string chars(256, 0);
  char32_t next = 256;
  for (char32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    chars[b] = printable ? b : next++;
  }
  return chars;
}

bool starts_with(const std::u32string& s, size_t i, std::u32string_view prefix) {
  return s.compare(i, prefix.size(), prefix) == 0;
}

}  // namespace

ClipTokenizer::ClipTokenizer(const std::string& vocab_json, const std::string& merges_txt,
                             const std::string& pad_token)
    : vocab_path_(vocab_json), byte_chars_(byte_characters()) {
  // vocab.json: {"piece": id, ...}
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_json, "vocabulary (vocab.json)"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(vocab_json + " is not valid JSON (CLIP's vocab.json): " + e.what());
  }
  if (!vocab.is_object() || vocab.empty()) {
    throw InputError(vocab_json + " is not CLIP's vocab.json (a JSON object of piece: id)");
  }
  for (const auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw InputError(vocab_json + ": the id of \"" + piece + "\" is not a non-negative integer");
    }
    vocab_.emplace(piece, id.get<int32_t>());
  }
  auto special = [&](const std::string& token, const char* role) {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) {
      throw InputError(vocab_json + " has no " + role + " token " + token + " (is it CLIP's vocab.json?)");
    }
    return it->second;
  };
  bos_id_ = special(kBosToken, "start-of-text");
  eos_id_ = special(kEosToken, "end-of-text");
  pad_id_ = special(pad_token, "padding");

  // merges.txt: "#version: ..." then one merge a line, "first second", by rank
  std::istringstream lines(read_file(merges_txt, "merges (merges.txt)"));
  std::string line;
  if (!std::getline(lines, line) || line.rfind("#version", 0) != 0) {
    throw InputError(merges_txt + ": the first line is not the \"#version: ...\" header of CLIP's merges.txt");
  }
  for (size_t number = 2; ranks_.size() < kMaxMerges && std::getline(lines, line); ++number) {
    std::istringstream fields(line);
    std::string first, second, extra;
    if (!(fields >> first)) continue;  // an empty line
    if (!(fields >> second) || (fields >> extra)) {
      throw InputError(merges_txt + ":" + std::to_string(number) +
                       ": a merge is two symbols separated by a space, not \"" + line + "\"");
    }
    ranks_.emplace(first + " " + second, static_cast<int32_t>(ranks_.size()));
  }
}

int32_t ClipTokenizer::id_of(const std::string& piece) const {
  auto it = vocab_.find(piece);
  return it == vocab_.end() ? eos_id_ : it->second;  // transformers' unknown token is the EOS
}

std::vector<int32_t> ClipTokenizer::bpe(const std::string& word) const {
  {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) return it->second;
  }
  // One symbol per byte (as its printable character); the last one ends the word.
  std::vector<std::string> symbols;
  symbols.reserve(word.size());
  for (unsigned char b : word) {
    std::string s;
    append_utf8(s, byte_chars_[b]);
    symbols.push_back(std::move(s));
  }
  symbols.back() += kEndOfWord;
  // Merge the adjacent pair of lowest rank, every occurrence of it from left to right, until no
  // pair has a rank.
  while (symbols.size() > 1) {
    int32_t best = std::numeric_limits<int32_t>::max();
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != ranks_.end() && it->second < best) best = it->second, best_at = i;
    }
    if (best == std::numeric_limits<int32_t>::max()) break;
    const std::string first = symbols[best_at], second = symbols[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        ++i;
      } else {
        merged.push_back(std::move(symbols[i]));
      }
    }
    symbols = std::move(merged);
  }
  std::vector<int32_t> ids;
  ids.reserve(symbols.size());
  for (const auto& s : symbols) ids.push_back(id_of(s));
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kMaxCachedWords) cache_.clear();
  cache_.emplace(word, ids);
  return ids;
}

std::vector<int32_t> ClipTokenizer::words(std::string_view text) const {
  // Lower-cased code points. White space only ever separates words in CLIP's pattern, so
  // collapsing and stripping it (whitespace_clean) is implied by skipping it below.
  const std::u32string s = to_lower(decode_utf8(text, "prompt"));
  static const std::u32string bos = U"<|startoftext|>", eos = U"<|endoftext|>";
  static constexpr std::u32string_view contractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    const CharClass c = char_class(s[i]);
    if (c == CharClass::Space) {
      ++i;
      continue;
    }
    // The pattern's alternatives in its order; the first that matches at i wins.
    size_t end = i;
    if (starts_with(s, i, bos)) {
      ids.push_back(bos_id_);
      i += bos.size();
      continue;
    }
    if (starts_with(s, i, eos)) {
      ids.push_back(eos_id_);
      i += eos.size();
      continue;
    }
    for (auto contraction : contractions) {
      if (starts_with(s, i, contraction)) {
        end = i + contraction.size();
        break;
      }
    }
    if (end == i) {
      end = i + 1;  // [\p{N}] is one code point; letters and the rest take the whole run
      if (c != CharClass::Number) {
        while (end < s.size() && char_class(s[end]) == c) ++end;
      }
    }
    std::string word;
    for (size_t k = i; k < end; ++k) append_utf8(word, s[k]);
    const auto pieces = bpe(word);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    i = end;
  }
  return ids;
}

ClipTokens ClipTokenizer::encode(std::string_view text, int64_t max_tokens) const {
  require_input(max_tokens >= 2, "CLIP's token count must be at least 2 (got " +
                                     std::to_string(max_tokens) + ")");
  ClipTokens out;
  out.ids.push_back(bos_id_);
  const auto w = words(text);
  const size_t kept = std::min<size_t>(w.size(), static_cast<size_t>(max_tokens - 2));
  out.ids.insert(out.ids.end(), w.begin(), w.begin() + static_cast<ptrdiff_t>(kept));
  out.ids.push_back(eos_id_);
  out.length = static_cast<int64_t>(out.ids.size());
  out.eot_index = std::find(out.ids.begin(), out.ids.end(), eos_id_) - out.ids.begin();
  out.ids.resize(max_tokens, pad_id_);
  return out;
}

}  // namespace fresco
