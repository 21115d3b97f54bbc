// The little of Unicode the tokenizers need, without a Unicode library: UTF-8 decoding and
// encoding, lower-casing by a small hand-written table, and the character classes of CLIP's
// pre-tokenization pattern (whitespace, \p{L} letters, \p{N} numbers, the rest) by another.
// Both tables are exact where they say so and approximate elsewhere; docs/text-encoders.md
// ("Tokenizers") lists what they cover and how far the approximation goes.
#pragma once

#include <string>
#include <string_view>

namespace fresco {

// The code points of UTF-8 text. Throws InputError for what is not UTF-8 (a stray continuation
// byte, a truncated sequence, an overlong form, a surrogate, a value above U+10FFFF), naming the
// byte offset; `what` says whose text it is ("prompt").
std::u32string decode_utf8(std::string_view text, std::string_view what = "text");

// Appends the UTF-8 form of `cp` (a valid scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

// Lower-cases like Python's str.lower() on the blocks the table covers: U+0000..U+058F (Basic
// Latin, Latin-1, Latin Extended-A and -B, IPA, Greek and Coptic, Cyrillic and its supplement,
// Armenian), Latin Extended Additional, letterlike symbols and number forms (the Kelvin, Ohm and
// Ångström signs, Roman numerals), enclosed alphanumerics (circled letters) and the fullwidth
// forms; but without the final-sigma rule (Σ always becomes σ; Python makes a word-final one ς).
// U+0130 (İ) becomes "i̇" (two code points), as in Python. Every other code point is left as it
// is (Georgian, Cherokee, Glagolitic, Coptic, Greek Extended, Deseret, ... are not lower-cased).
void append_lower(std::u32string& out, char32_t cp);
std::u32string to_lower(std::u32string_view text);

// Classes of CLIP's pattern `[\p{L}]+ | [\p{N}] | [^\s\p{L}\p{N}]+`.
enum class CharClass { Space, Letter, Number, Other };

// Exact for ASCII and for Unicode's White_Space (what Python's `regex` module calls \s). Beyond
// ASCII, a table of the number and non-letter ranges of some blocks, exact on their assigned
// code points (Latin-1 to Armenian with the spacing and combining marks, Hebrew, Arabic,
// Devanagari, Thai, U+2000..U+2BFF: punctuation, symbols, number forms, arrows; U+2E00..U+2FFF:
// supplemental punctuation, CJK radicals; CJK punctuation and kana marks, enclosed CJK, private use, variation selectors and small
// forms, fullwidth forms, musical symbols, U+1F000..U+1FBFF: emoji, pictographs and their
// neighbours); every other code point counts as a letter. So the combining marks of other
// scripts (Bengali, Tamil, Tibetan, ...: Unicode's Mn/Mc), their digits and their punctuation
// count as letters.
CharClass char_class(char32_t cp);

}  // namespace fresco
