// UTF-8 helpers shared by the tokenizer pieces: decoding one code point, appending one, and
// Rust's String::from_utf8_lossy (what HF decode returns for byte sequences that are not UTF-8).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace refract::text {

// Decodes the code point starting at s[i] (valid UTF-8 assumed) and advances i past it.
inline char32_t utf8_next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  char32_t cp;
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    i += 3;
  } else {
    cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    i += 4;
  }
  return cp;
}

// Decodes the code point that ends just before s[end] (valid UTF-8 assumed).
char32_t utf8_prev(std::string_view s, size_t end);

void utf8_append(std::string& out, char32_t cp);

// True when `s` is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool utf8_is_valid(std::string_view s);

// Rust's String::from_utf8_lossy: every maximal ill-formed subsequence becomes one U+FFFD
// (the Unicode "substitution of maximal subparts" practice).
// ref: https://doc.rust-lang.org/std/string/struct.String.html#method.from_utf8_lossy
std::string utf8_lossy(std::string_view bytes);

// char::is_whitespace (Unicode White_Space) and char::is_alphanumeric (Alphabetic | N*), as
// HF AddedVocabulary uses them for lstrip / rstrip / single_word.
bool is_unicode_whitespace(char32_t cp);
bool is_unicode_alphanumeric(char32_t cp);

}  // namespace refract::text
