// The tokenizers (src/text) against ids from independent references: tests/data/tokenizers/
// make_tokenizer_data.py runs Python's sentencepiece binding (T5) and its own implementation of
// OpenAI's simple_tokenizer with the `regex` module (CLIP) on fixtures trained for the test, and
// writes expected.json, which this test reads. Also: the Unicode tables on the blocks they claim
// exactly, the truncation and padding lengths of FLUX.1-dev and schnell, and bad files refused
// with their names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"
#include "src/text/clip_tokenizer.hpp"
#include "src/text/t5_tokenizer.hpp"
#include "src/text/unicode.hpp"

using namespace fresco;
namespace fs = std::filesystem;

namespace {

const fs::path kData = FRESCO_TOKENIZER_DATA;

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream in(kData / "expected.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

std::string spiece() { return (kData / "tokenizer_2" / "spiece.model").string(); }
std::string vocab() { return (kData / "tokenizer" / "vocab.json").string(); }
std::string merges() { return (kData / "tokenizer" / "merges.txt").string(); }

// A scratch folder of the test's own, removed at the end.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("fresco-tokenizers-" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  }
};

// Runs `f`, which must throw InputError whose message contains `needle` (a file name).
template <typename F>
void expect_input_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no InputError (expected one naming " << needle << ")";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "the message does not name " << needle << ": " << e.what();
  }
}

std::vector<int32_t> ids_of(const nlohmann::json& c) { return c.at("ids").get<std::vector<int32_t>>(); }

}  // namespace

TEST(T5Tokenizer, MatchesSentencePieceReference) {
  const T5Tokenizer t5(spiece());
  EXPECT_EQ(t5.eos_id(), expected()["t5"]["eos_id"].get<int>());
  EXPECT_EQ(t5.pad_id(), expected()["t5"]["pad_id"].get<int>());
  EXPECT_EQ(t5.vocab_size(), 400);
  for (const auto& c : expected()["t5"]["cases"]) {
    const std::string text = c["text"];
    const int64_t max_tokens = c["max_tokens"];
    const T5Tokens got = t5.encode(text, max_tokens);
    EXPECT_EQ(got.ids, ids_of(c)) << "text: \"" << text << "\", max_tokens " << max_tokens;
    EXPECT_EQ(got.length, c["length"].get<int64_t>()) << "text: \"" << text << "\"";
  }
}

TEST(T5Tokenizer, TruncationAndPaddingOfDevAndSchnell) {
  const T5Tokenizer t5(spiece());
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "a red fox in the snow ";
  const std::vector<int32_t> all = t5.pieces(long_text);
  ASSERT_GT(all.size(), 600u);
  for (int64_t n : {T5Tokenizer::kDevTokens, T5Tokenizer::kSchnellTokens, int64_t{7}, int64_t{1}}) {
    const T5Tokens t = t5.encode(long_text, n);
    ASSERT_EQ(static_cast<int64_t>(t.ids.size()), n);
    EXPECT_EQ(t.length, n);
    EXPECT_EQ(t.ids.back(), t5.eos_id()) << "the end of sequence stays last when truncating to " << n;
    EXPECT_EQ(std::vector<int32_t>(t.ids.begin(), t.ids.end() - 1),
              std::vector<int32_t>(all.begin(), all.begin() + n - 1));
  }
  const T5Tokens short_one = t5.encode("a fox", T5Tokenizer::kDevTokens);
  ASSERT_EQ(short_one.ids.size(), 512u);
  EXPECT_EQ(short_one.ids[short_one.length - 1], t5.eos_id());
  for (size_t i = short_one.length; i < short_one.ids.size(); ++i) ASSERT_EQ(short_one.ids[i], t5.pad_id());
  EXPECT_THROW(t5.encode("a fox", 0), InputError);
}

TEST(T5Tokenizer, RefusesMissingAndCorruptModels) {
  const Scratch s;
  const std::string missing = (s.dir / "no-such" / "spiece.model").string();
  expect_input_error([&] { T5Tokenizer t(missing); }, missing);
  const std::string garbage = s.write("spiece.model", std::string("\x0a\xff\xff\xff garbage, not a protobuf"));
  expect_input_error([&] { T5Tokenizer t(garbage); }, garbage);
  expect_input_error([&] { T5Tokenizer t(vocab()); }, vocab());  // a JSON file
  const std::string empty = s.write("empty.model", "");
  expect_input_error([&] { T5Tokenizer t(empty); }, empty);
  expect_input_error([&] { T5Tokenizer t(s.dir.string()); }, s.dir.string());  // a folder
  // a model that is cut short
  std::ifstream in(spiece(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = s.write("cut.model", bytes.substr(0, bytes.size() / 2));
  expect_input_error([&] { T5Tokenizer t(cut); }, cut);
}

TEST(T5Tokenizer, RefusesInvalidUtf8) {
  const T5Tokenizer t5(spiece());
  EXPECT_THROW(t5.encode("caf\xe9", 16), InputError);       // Latin-1, not UTF-8
  EXPECT_THROW(t5.encode("\xe6\x9d", 16), InputError);      // truncated sequence
  EXPECT_THROW(t5.encode("\xed\xa0\x80", 16), InputError);  // a surrogate
}

TEST(ClipTokenizer, MatchesSimpleTokenizerReference) {
  const ClipTokenizer clip(vocab(), merges());
  const auto& e = expected()["clip"];
  EXPECT_EQ(clip.bos_id(), e["bos_id"].get<int>());
  EXPECT_EQ(clip.eos_id(), e["eos_id"].get<int>());
  EXPECT_EQ(clip.pad_id(), e["pad_id"].get<int>());
  EXPECT_EQ(clip.pad_id(), clip.eos_id()) << "FLUX's CLIPTokenizer pads with <|endoftext|>";
  for (const auto& c : e["cases"]) {
    const std::string text = c["text"];
    const ClipTokens got = clip.encode(text, e["max_tokens"].get<int64_t>());
    EXPECT_EQ(got.ids, ids_of(c)) << "text: \"" << text << "\"";
    EXPECT_EQ(got.eot_index, c["eot_index"].get<int64_t>()) << "text: \"" << text << "\"";
    EXPECT_EQ(got.length, c["length"].get<int64_t>()) << "text: \"" << text << "\"";
  }
  // Encoding again goes through the cache of merged words: the same ids.
  for (const auto& c : e["cases"]) EXPECT_EQ(clip.encode(c["text"].get<std::string>()).ids, ids_of(c));
}

// The documented limits (docs/text-encoders.md): if one of these starts to agree with the
// reference, the approximation improved and the documentation must say so.
TEST(ClipTokenizer, KnownDifferencesStillDiffer) {
  const ClipTokenizer clip(vocab(), merges());
  for (const auto& c : expected()["clip"]["known_differences"]) {
    EXPECT_NE(clip.encode(c["text"].get<std::string>()).ids, ids_of(c))
        << "\"" << c["text"].get<std::string>() << "\" now matches the reference ("
        << c["why"].get<std::string>() << "): update docs/text-encoders.md and the generator";
  }
}

TEST(ClipTokenizer, TruncationAndPadding) {
  const ClipTokenizer clip(vocab(), merges());
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "a red fox ";
  ASSERT_GT(clip.words(long_text).size(), 100u);
  const ClipTokens t = clip.encode(long_text);
  ASSERT_EQ(static_cast<int64_t>(t.ids.size()), ClipTokenizer::kMaxTokens);
  EXPECT_EQ(t.ids.front(), clip.bos_id());
  EXPECT_EQ(t.ids.back(), clip.eos_id());
  EXPECT_EQ(t.eot_index, ClipTokenizer::kMaxTokens - 1);
  EXPECT_EQ(t.length, ClipTokenizer::kMaxTokens);
  const ClipTokens empty = clip.encode("");
  EXPECT_EQ(empty.length, 2);
  EXPECT_EQ(empty.eot_index, 1);
  const ClipTokens two = clip.encode("a red fox", 2);
  EXPECT_EQ(two.ids, (std::vector<int32_t>{clip.bos_id(), clip.eos_id()}));
  EXPECT_THROW(clip.encode("a fox", 1), InputError);
  EXPECT_THROW(clip.encode("caf\xe9"), InputError);
}

TEST(ClipTokenizer, RefusesMissingAndCorruptFiles) {
  const Scratch s;
  const std::string missing = (s.dir / "vocab.json").string();
  expect_input_error([&] { ClipTokenizer c(missing, merges()); }, missing);
  const std::string missing_merges = (s.dir / "merges.txt").string();
  expect_input_error([&] { ClipTokenizer c(vocab(), missing_merges); }, missing_merges);
  const std::string not_json = s.write("not-json.json", "{\"a\": 1, ");
  expect_input_error([&] { ClipTokenizer c(not_json, merges()); }, not_json);
  const std::string array = s.write("array.json", "[1, 2, 3]");
  expect_input_error([&] { ClipTokenizer c(array, merges()); }, array);
  const std::string bad_id = s.write("bad-id.json", R"({"<|startoftext|>": 0, "<|endoftext|>": "one"})");
  expect_input_error([&] { ClipTokenizer c(bad_id, merges()); }, bad_id);
  const std::string no_specials = s.write("no-specials.json", R"({"a": 0, "b": 1})");
  expect_input_error([&] { ClipTokenizer c(no_specials, merges()); }, no_specials);
  const std::string no_header = s.write("no-header.txt", "i n\na n\n");
  expect_input_error([&] { ClipTokenizer c(vocab(), no_header); }, no_header);
  const std::string bad_line = s.write("bad-line.txt", "#version: 0.2\ni n\na n d\n");
  expect_input_error([&] { ClipTokenizer c(vocab(), bad_line); }, bad_line + ":3");
  expect_input_error([&] { ClipTokenizer c(vocab(), merges(), "<|pad|>"); }, vocab());
  expect_input_error([&] { ClipTokenizer c(spiece(), merges()); }, spiece());  // a binary file
}

TEST(Unicode, LowerCaseMatchesPythonOnItsBlocks) {
  for (const auto& b : expected()["lowercase"]) {
    const std::u32string text = decode_utf8(b["text"].get<std::string>());
    const std::u32string want = decode_utf8(b["lower"].get<std::string>());
    const std::u32string got = to_lower(text);
    const auto [g, w] = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    EXPECT_TRUE(g == got.end() && w == want.end())
        << "block from U+" << std::hex << b["first"].get<int>() << ": first difference at U+"
        << static_cast<uint32_t>(g == got.end() ? 0 : *g) << ", Python has U+"
        << static_cast<uint32_t>(w == want.end() ? 0 : *w);
  }
}

TEST(Unicode, ClassesMatchRegexModuleOnTheExactBlocks) {
  for (const auto& b : expected()["classes"]) {
    const auto first = b["first"].get<char32_t>();
    const std::string classes = b["classes"];
    int wrong = 0;
    for (size_t i = 0; i < classes.size(); ++i) {
      if (classes[i] == '-') continue;  // unassigned: no claim
      const char32_t cp = first + static_cast<char32_t>(i);
      const CharClass c = char_class(cp);
      const char got = c == CharClass::Space ? 'S' : c == CharClass::Letter ? 'L' : c == CharClass::Number ? 'N' : 'O';
      if (got != classes[i] && ++wrong <= 5) {
        ADD_FAILURE() << "U+" << std::hex << static_cast<uint32_t>(cp) << ": " << got << ", the regex module says " << classes[i];
      }
    }
    EXPECT_EQ(wrong, 0) << "block from U+" << std::hex << static_cast<uint32_t>(first);
  }
}

TEST(Unicode, RefusesInvalidUtf8WithItsOffset) {
  try {
    decode_utf8("ok \xc0\xaf", "prompt");  // overlong '/'
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decode_utf8("\x80"), InputError);
  EXPECT_THROW(decode_utf8("\xf4\x90\x80\x80"), InputError);  // above U+10FFFF
  EXPECT_EQ(decode_utf8("\xf0\x9f\xa6\x8a"), std::u32string(1, 0x1F98A));
}
