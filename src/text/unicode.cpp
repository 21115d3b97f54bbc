// UTF-8, lower-casing and CLIP's character classes by small tables (see unicode.hpp).
#include "src/text/unicode.hpp"

#include <algorithm>
#include <iterator>
#include <cstdint>

#include "src/core/error.hpp"

namespace fresco {

namespace {

[[noreturn]] void not_utf8(std::string_view what, size_t offset, const char* why) {
  throw InputError(std::string(what) + " is not valid UTF-8: " + why + " at byte " +
                   std::to_string(offset));
}

// One run of code points that lower-case by adding `delta`; with `alternate`, only every other
// one (first, first + 2, ...) does: the upper/lower pairs of Latin Extended-A, Cyrillic, ...
struct CaseRange {
  char32_t first, last;
  int32_t delta;
  bool alternate;
};

// Python's str.lower() (Unicode 14's lower-case mappings, from its unicodedata) on the blocks
// of unicode.hpp, every mapping of those blocks. Sorted by `first`; the ranges do not overlap.
constexpr CaseRange kLower[] = {
    // Basic Latin
    {0x0041, 0x005A, 32, false},
    // Latin-1
    {0x00C0, 0x00D6, 32, false}, {0x00D8, 0x00DE, 32, false},
    // Latin Extended-A
    {0x0100, 0x012E, 1, true}, {0x0132, 0x0136, 1, true}, {0x0139, 0x0147, 1, true},
    {0x014A, 0x0176, 1, true}, {0x0178, 0x0178, -121, false}, {0x0179, 0x017D, 1, true},
    // Latin Extended-B
    {0x0181, 0x0181, 210, false}, {0x0182, 0x0184, 1, true}, {0x0186, 0x0186, 206, false},
    {0x0187, 0x0187, 1, false}, {0x0189, 0x018A, 205, false}, {0x018B, 0x018B, 1, false},
    {0x018E, 0x018E, 79, false}, {0x018F, 0x018F, 202, false}, {0x0190, 0x0190, 203, false},
    {0x0191, 0x0191, 1, false}, {0x0193, 0x0193, 205, false}, {0x0194, 0x0194, 207, false},
    {0x0196, 0x0196, 211, false}, {0x0197, 0x0197, 209, false}, {0x0198, 0x0198, 1, false},
    {0x019C, 0x019C, 211, false}, {0x019D, 0x019D, 213, false}, {0x019F, 0x019F, 214, false},
    {0x01A0, 0x01A4, 1, true}, {0x01A6, 0x01A6, 218, false}, {0x01A7, 0x01A7, 1, false},
    {0x01A9, 0x01A9, 218, false}, {0x01AC, 0x01AC, 1, false}, {0x01AE, 0x01AE, 218, false},
    {0x01AF, 0x01AF, 1, false}, {0x01B1, 0x01B2, 217, false}, {0x01B3, 0x01B5, 1, true},
    {0x01B7, 0x01B7, 219, false}, {0x01B8, 0x01B8, 1, false}, {0x01BC, 0x01BC, 1, false},
    {0x01C4, 0x01C4, 2, false}, {0x01C5, 0x01C5, 1, false}, {0x01C7, 0x01C7, 2, false},
    {0x01C8, 0x01C8, 1, false}, {0x01CA, 0x01CA, 2, false}, {0x01CB, 0x01DB, 1, true},
    {0x01DE, 0x01EE, 1, true}, {0x01F1, 0x01F1, 2, false}, {0x01F2, 0x01F4, 1, true},
    {0x01F6, 0x01F6, -97, false}, {0x01F7, 0x01F7, -56, false}, {0x01F8, 0x021E, 1, true},
    {0x0220, 0x0220, -130, false}, {0x0222, 0x0232, 1, true}, {0x023A, 0x023A, 10795, false},
    {0x023B, 0x023B, 1, false}, {0x023D, 0x023D, -163, false}, {0x023E, 0x023E, 10792, false},
    {0x0241, 0x0241, 1, false}, {0x0243, 0x0243, -195, false}, {0x0244, 0x0244, 69, false},
    {0x0245, 0x0245, 71, false}, {0x0246, 0x024E, 1, true},
    // Greek and Coptic
    {0x0370, 0x0372, 1, true}, {0x0376, 0x0376, 1, false}, {0x037F, 0x037F, 116, false},
    {0x0386, 0x0386, 38, false}, {0x0388, 0x038A, 37, false}, {0x038C, 0x038C, 64, false},
    {0x038E, 0x038F, 63, false}, {0x0391, 0x03A1, 32, false}, {0x03A3, 0x03AB, 32, false},
    {0x03CF, 0x03CF, 8, false}, {0x03D8, 0x03EE, 1, true}, {0x03F4, 0x03F4, -60, false},
    {0x03F7, 0x03F7, 1, false}, {0x03F9, 0x03F9, -7, false}, {0x03FA, 0x03FA, 1, false},
    {0x03FD, 0x03FF, -130, false},
    // Cyrillic and its supplement
    {0x0400, 0x040F, 80, false}, {0x0410, 0x042F, 32, false}, {0x0460, 0x0480, 1, true},
    {0x048A, 0x04BE, 1, true}, {0x04C0, 0x04C0, 15, false}, {0x04C1, 0x04CD, 1, true},
    {0x04D0, 0x052E, 1, true},
    // Armenian
    {0x0531, 0x0556, 48, false},
    // Latin Extended Additional
    {0x1E00, 0x1E94, 1, true}, {0x1E9E, 0x1E9E, -7615, false}, {0x1EA0, 0x1EFE, 1, true},
    // letterlike symbols, number forms
    {0x2126, 0x2126, -7517, false}, {0x212A, 0x212A, -8383, false}, {0x212B, 0x212B, -8262, false},
    {0x2132, 0x2132, 28, false}, {0x2160, 0x216F, 16, false}, {0x2183, 0x2183, 1, false},
    // enclosed alphanumerics
    {0x24B6, 0x24CF, 26, false},
    // fullwidth forms
    {0xFF21, 0xFF3A, 32, false},
};

// Numbers and non-letters outside ASCII; a code point in none of these (and not whitespace) is
// a letter. Exact, against Unicode 14's general categories, inside the blocks named in the
// comments (unassigned code points there count as Other, as for \p{L}/\p{N}); whole ranges of
// Other below them (private use, variation selectors, emoji and pictographs, tags).
enum : uint8_t { N = 1, O = 2 };
struct ClassRange {
  char32_t first, last;
  uint8_t cls;
};
constexpr ClassRange kClasses[] = {
    // Latin-1, spacing modifiers (U+0080..U+02FF)
    {0x0080, 0x0084, O}, {0x0086, 0x009F, O}, {0x00A1, 0x00A9, O}, {0x00AB, 0x00B1, O},
    {0x00B2, 0x00B3, N}, {0x00B4, 0x00B4, O}, {0x00B6, 0x00B8, O}, {0x00B9, 0x00B9, N},
    {0x00BB, 0x00BB, O}, {0x00BC, 0x00BE, N}, {0x00BF, 0x00BF, O}, {0x00D7, 0x00D7, O},
    {0x00F7, 0x00F7, O}, {0x02C2, 0x02C5, O}, {0x02D2, 0x02DF, O}, {0x02E5, 0x02EB, O},
    {0x02ED, 0x02ED, O}, {0x02EF, 0x02FF, O},
    // combining diacritical marks, Greek, Cyrillic (U+0300..U+052F)
    {0x0300, 0x036F, O}, {0x0375, 0x0375, O}, {0x037E, 0x037E, O}, {0x0384, 0x0385, O},
    {0x0387, 0x0387, O}, {0x03F6, 0x03F6, O}, {0x0482, 0x0489, O},
    // Armenian (U+0530..U+058F)
    {0x055A, 0x055F, O}, {0x0589, 0x058F, O},
    // Hebrew (U+0590..U+05FF)
    {0x0591, 0x05C7, O}, {0x05F3, 0x05F4, O},
    // Arabic (U+0600..U+06FF)
    {0x0600, 0x061F, O}, {0x064B, 0x065F, O}, {0x0660, 0x0669, N}, {0x066A, 0x066D, O},
    {0x0670, 0x0670, O}, {0x06D4, 0x06D4, O}, {0x06D6, 0x06E4, O}, {0x06E7, 0x06ED, O},
    {0x06F0, 0x06F9, N}, {0x06FD, 0x06FE, O},
    // Devanagari (U+0900..U+097F)
    {0x0900, 0x0903, O}, {0x093A, 0x093C, O}, {0x093E, 0x094F, O}, {0x0951, 0x0957, O},
    {0x0962, 0x0965, O}, {0x0966, 0x096F, N}, {0x0970, 0x0970, O},
    // Thai (U+0E00..U+0E7F)
    {0x0E31, 0x0E31, O}, {0x0E34, 0x0E3F, O}, {0x0E47, 0x0E4F, O}, {0x0E50, 0x0E59, N},
    {0x0E5A, 0x0E5B, O},
    // general punctuation, super- and subscripts, currency, letterlike symbols, number forms,
    // arrows, mathematical operators, technical, enclosed alphanumerics, box drawing, shapes,
    // dingbats, miscellaneous symbols and arrows (U+2000..U+2BFF)
    {0x200B, 0x2027, O}, {0x202A, 0x202E, O}, {0x2030, 0x205E, O}, {0x2060, 0x206F, O},
    {0x2070, 0x2070, N}, {0x2074, 0x2079, N}, {0x207A, 0x207E, O}, {0x2080, 0x2089, N},
    {0x208A, 0x208E, O}, {0x20A0, 0x2101, O}, {0x2103, 0x2106, O}, {0x2108, 0x2109, O},
    {0x2114, 0x2114, O}, {0x2116, 0x2118, O}, {0x211E, 0x2123, O}, {0x2125, 0x2125, O},
    {0x2127, 0x2127, O}, {0x2129, 0x2129, O}, {0x212E, 0x212E, O}, {0x213A, 0x213B, O},
    {0x2140, 0x2144, O}, {0x214A, 0x214D, O}, {0x214F, 0x214F, O}, {0x2150, 0x2182, N},
    {0x2185, 0x2189, N}, {0x218A, 0x244A, O}, {0x2460, 0x249B, N}, {0x249C, 0x24E9, O},
    {0x24EA, 0x24FF, N}, {0x2500, 0x2775, O}, {0x2776, 0x2793, N}, {0x2794, 0x2BFF, O},
    // supplemental punctuation, CJK radicals, Kangxi radicals, ideographic description
    // (U+2E00..U+2FFF)
    {0x2E00, 0x2E2E, O}, {0x2E30, 0x2FFF, O},
    // CJK symbols and punctuation, kana marks (U+3000..U+30FF)
    {0x3001, 0x3004, O}, {0x3007, 0x3007, N}, {0x3008, 0x3020, O}, {0x3021, 0x3029, N},
    {0x302A, 0x3030, O}, {0x3036, 0x3037, O}, {0x3038, 0x303A, N}, {0x303D, 0x303F, O},
    {0x3099, 0x309C, O}, {0x30A0, 0x30A0, O}, {0x30FB, 0x30FB, O},
    // enclosed CJK letters and months, CJK compatibility (U+3200..U+33FF)
    {0x3200, 0x321E, O}, {0x3220, 0x3229, N}, {0x322A, 0x3247, O}, {0x3248, 0x324F, N},
    {0x3250, 0x3250, O}, {0x3251, 0x325F, N}, {0x3260, 0x327F, O}, {0x3280, 0x3289, N},
    {0x328A, 0x32B0, O}, {0x32B1, 0x32BF, N}, {0x32C0, 0x33FF, O},
    // private use; variation selectors; vertical, compatibility and small forms
    {0xE000, 0xF8FF, O}, {0xFE00, 0xFE0F, O}, {0xFE10, 0xFE6B, O},
    // fullwidth and halfwidth forms, specials (U+FF00..U+FFFF)
    {0xFF01, 0xFF0F, O}, {0xFF10, 0xFF19, N}, {0xFF1A, 0xFF20, O}, {0xFF3B, 0xFF40, O},
    {0xFF5B, 0xFF65, O}, {0xFFE0, 0xFFEE, O}, {0xFFF9, 0xFFFF, O},
    // musical symbols (U+1D000..U+1D24F)
    {0x1D000, 0x1D24F, O},
    // mahjong, dominoes, cards, enclosed alphanumerics, regional indicators, emoji, pictographs,
    // symbols, symbols for legacy computing (U+1F000..U+1FBEF), then its digits
    {0x1F000, 0x1F0FF, O}, {0x1F100, 0x1F10C, N}, {0x1F10D, 0x1FBEF, O}, {0x1FBF0, 0x1FBF9, N},
    // tags (emoji flag sequences), variation selectors supplement, private use planes
    {0xE0000, 0xE007F, O}, {0xE0100, 0xE01EF, O}, {0xF0000, 0x10FFFF, O},
};

template <typename Range>
const Range* find_range(const Range* begin, const Range* end, char32_t cp) {
  // The first range whose last is >= cp, if it starts at or before cp.
  const Range* r =
      std::lower_bound(begin, end, cp, [](const Range& x, char32_t c) { return x.last < c; });
  return (r != end && r->first <= cp) ? r : nullptr;
}

bool is_space(char32_t cp) {
  if (cp < 0x80) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::u32string decode_utf8(std::string_view text, std::string_view what) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int extra;
    char32_t cp, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      extra = 1, cp = b0 & 0x1F, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      extra = 2, cp = b0 & 0x0F, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      extra = 3, cp = b0 & 0x07, min = 0x10000;
    } else {
      not_utf8(what, i, b0 < 0xC0 ? "a continuation byte without a lead byte" : "an invalid lead byte");
    }
    if (i + extra >= text.size()) not_utf8(what, i, "a truncated sequence");
    for (int k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) not_utf8(what, i, "a truncated sequence");
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min) not_utf8(what, i, "an overlong form");
    if (cp >= 0xD800 && cp <= 0xDFFF) not_utf8(what, i, "a surrogate code point");
    if (cp > 0x10FFFF) not_utf8(what, i, "a code point above U+10FFFF");
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_lower(std::u32string& out, char32_t cp) {
  if (cp == 0x0130) {  // İ: "i" and a combining dot above, as Python's str.lower()
    out.push_back(U'i');
    out.push_back(0x0307);
    return;
  }
  const CaseRange* r = find_range(std::begin(kLower), std::end(kLower), cp);
  if (r && (!r->alternate || (cp - r->first) % 2 == 0)) cp = static_cast<char32_t>(cp + r->delta);
  out.push_back(cp);
}

std::u32string to_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_lower(out, cp);
  return out;
}

CharClass char_class(char32_t cp) {
  if (is_space(cp)) return CharClass::Space;
  if (cp < 0x80) {
    if ((cp >= U'a' && cp <= U'z') || (cp >= U'A' && cp <= U'Z')) return CharClass::Letter;
    if (cp >= U'0' && cp <= U'9') return CharClass::Number;
    return CharClass::Other;
  }
  const ClassRange* r = find_range(std::begin(kClasses), std::end(kClasses), cp);
  if (!r) return CharClass::Letter;
  return r->cls == N ? CharClass::Number : CharClass::Other;
}

}  // namespace fresco
