// GPT-2 byte-level alphabet: every byte gets a printable Unicode character, so that BPE tokens
// are strings. ref: tokenizers/src/pre_tokenizers/byte_level.rs bytes_char()
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace refract::text {

// The character standing for each byte: printable Latin-1 maps to itself, the other 68 bytes
// to U+0100 + n in byte order.
const std::array<char32_t, 256>& byte_to_char();

// The bytes a byte-level token string stands for. When some character is outside the
// alphabet (e.g. an added token " <x>" with a plain space) the token's own UTF-8 bytes are used,
// as HF's ByteLevel decoder does.
std::string byte_level_decode(std::string_view token);

// The byte-level token string for raw bytes (each byte -> its character, UTF-8 encoded).
std::string byte_level_encode(std::string_view bytes);

}  // namespace refract::text
