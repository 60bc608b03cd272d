#include "base/utf8.h"

namespace kvserve::base {
namespace {

enum class Utf8Scan { kComplete, kIncomplete, kInvalid };

// Looks at the sequence starting at s[0]. kComplete sets *length; kIncomplete means s is a valid
// but unfinished prefix; kInvalid means s[0] can never start a character.
Utf8Scan ScanUtf8(absl::string_view s, size_t* length) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) {
    *length = 1;
    return Utf8Scan::kComplete;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return Utf8Scan::kInvalid;  // continuation byte, C0, C1, F5..FF
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= s.size()) return Utf8Scan::kIncomplete;
    const auto b = static_cast<uint8_t>(s[i]);
    const uint8_t min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return Utf8Scan::kInvalid;
  }
  *length = need;
  return Utf8Scan::kComplete;
}

}  // namespace

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Stream::Add(absl::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t length = 0;
    const Utf8Scan scan = ScanUtf8(absl::string_view(pending_).substr(i), &length);
    if (scan == Utf8Scan::kIncomplete) break;
    if (scan == Utf8Scan::kInvalid) {
      out += kReplacementUtf8;
      ++i;
    } else {
      out.append(pending_, i, length);
      i += length;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::Flush() {
  std::string out;
  if (!pending_.empty()) out = kReplacementUtf8;  // one unfinished sequence
  pending_.clear();
  return out;
}

std::string SanitizeUtf8(absl::string_view bytes) {
  Utf8Stream d;
  std::string out = d.Add(bytes);
  return out + d.Flush();
}

size_t FindInvalidUtf8(absl::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t length = 0;
    if (ScanUtf8(bytes.substr(i), &length) != Utf8Scan::kComplete) return i;
    i += length;
  }
  return absl::string_view::npos;
}

}  // namespace kvserve::base
