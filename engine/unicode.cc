#include "engine/unicode.h"

#include <array>

#include "unicode/uchar.h"

namespace kvserve::engine {
namespace {

// Decodes one code point at `*offset`; false when the bytes there are not well-formed.
bool DecodeOne(std::string_view s, size_t* offset, uint32_t* cp) {
  const size_t i = *offset;
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const uint8_t lead = b(0);
  if (lead < 0x80) {
    *cp = lead;
    *offset += 1;
    return true;
  }
  if ((lead & 0xE0) == 0xC0) {
    if (!cont(1)) return false;
    *cp = ((lead & 0x1F) << 6) | (b(1) & 0x3F);
    *offset += 2;
    return true;
  }
  if ((lead & 0xF0) == 0xE0) {
    if (!cont(1) || !cont(2)) return false;
    *cp = ((lead & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    *offset += 3;
    return true;
  }
  if ((lead & 0xF8) == 0xF0) {
    if (!cont(1) || !cont(2) || !cont(3)) return false;
    *cp = ((lead & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    *offset += 4;
    return true;
  }
  return false;
}

struct ByteTables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int, 512> cp_to_byte;  // every mapped code point is below U+0200
};

const ByteTables& GetByteTables() {
  static const ByteTables* tables = [] {
    auto* t = new ByteTables;
    t->cp_to_byte.fill(-1);
    int next_unprintable = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : 0x100 + next_unprintable++;
      AppendUtf8(cp, &t->byte_to_utf8[b]);
      t->cp_to_byte[cp] = b;
    }
    return t;
  }();
  return *tables;
}

}  // namespace

std::vector<uint32_t> DecodeUtf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    uint32_t cp;
    if (DecodeOne(text, &offset, &cp)) {
      out.push_back(cp);
    } else {
      out.push_back(kReplacementCharacter);
      ++offset;
    }
  }
  return out;
}

CodepointClass ClassifyCodepoint(uint32_t cp) {
  CodepointClass c;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      c.letter = true;
      break;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      c.number = true;
      break;
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      c.punctuation = true;
      break;
    default:
      break;
  }
  // The White_Space property (what \s means in the Hugging Face and llama.cpp regexes).
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      c.whitespace = true;
      break;
    default:
      c.whitespace = cp >= 0x2000 && cp <= 0x200A;
  }
  return c;
}

const std::string& ByteToUnicode(uint8_t byte) { return GetByteTables().byte_to_utf8[byte]; }

int UnicodeToByte(uint32_t cp) { return cp < 512 ? GetByteTables().cp_to_byte[cp] : -1; }

}  // namespace kvserve::engine
