#include "text/byte_level.h"

#include "text/utf8.h"

namespace refract::text {

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

namespace {
// Inverse of byte_to_char over U+0000..U+01FF (-1: not in the alphabet).
const std::array<int16_t, 512>& char_to_byte() {
  static const std::array<int16_t, 512> table = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    const auto& fwd = byte_to_char();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}
}  // namespace

std::string byte_level_decode(std::string_view token) {
  const auto& inv = char_to_byte();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const char32_t cp = utf8_next(token, i);
    const int b = cp < 512 ? inv[cp] : -1;
    // ref: tokenizers decoders/byte_level.rs: a token with an unknown char keeps its bytes.
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

std::string byte_level_encode(std::string_view bytes) {
  const auto& fwd = byte_to_char();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8_append(out, fwd[b]);
  return out;
}

}  // namespace refract::text
