// NFC as HF tokenizers computes it: Unicode 9.0 tables (unicode-normalization-alignments).
#pragma once
#include <string>
#include <string_view>

namespace refract::text {

// NFC of valid UTF-8 `s`, restricted to Unicode 9.0: a character assigned after 9.0 is
// never decomposed, reordered or composed (the reference treats it as an unknown starter).
// Returns `s` unchanged (cheaply) when nothing in it can change under NFC.
std::string nfc_unicode9(std::string_view s);

}  // namespace refract::text
