// Header parsing only; every read is bounds-checked (the input is untrusted).
// refs: PNG spec 11.2.2 (IHDR); ITU T.81 B.1.1.3 / B.2.2 (markers, SOFn); WebP container spec
// (VP8 frame header, VP8L header, VP8X chunk); BMP BITMAPINFOHEADER / BITMAPCOREHEADER.
#include "vision/probe.h"

#include <cstdlib>
#include <cstring>

namespace refract::vision {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && std::memcmp(s.data(), p.data(), p.size()) == 0;
}
uint32_t u8(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }
uint32_t be16(std::string_view s, size_t i) { return (u8(s, i) << 8) | u8(s, i + 1); }
uint32_t be32(std::string_view s, size_t i) { return (be16(s, i) << 16) | be16(s, i + 2); }
uint32_t le16(std::string_view s, size_t i) { return u8(s, i) | (u8(s, i + 1) << 8); }
uint32_t le24(std::string_view s, size_t i) { return le16(s, i) | (u8(s, i + 2) << 16); }
uint32_t le32(std::string_view s, size_t i) { return le24(s, i) | (u8(s, i + 3) << 24); }

std::optional<ImageSize> probe_png(std::string_view b) {
  // 8-byte signature, then the IHDR chunk: length (13), "IHDR", width, height (big-endian).
  if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
  return ImageSize{be32(b, 16), be32(b, 20)};
}

std::optional<ImageSize> probe_jpeg(std::string_view b) {
  size_t i = 2;  // after SOI
  while (i + 4 <= b.size()) {
    if (u8(b, i) != 0xFF) return std::nullopt;
    const uint32_t marker = u8(b, i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      i += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // EOI / SOS before any SOF
    const uint32_t len = be16(b, i + 2);
    if (len < 2) return std::nullopt;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      // length, precision, height (16), width (16)
      if (i + 9 > b.size()) return std::nullopt;
      return ImageSize{be16(b, i + 7), be16(b, i + 5)};
    }
    i += 2 + len;
  }
  return std::nullopt;
}

std::optional<ImageSize> probe_webp(std::string_view b) {
  if (b.size() < 30) return std::nullopt;
  const std::string_view chunk = b.substr(12, 4);
  if (chunk == "VP8 ") {
    // frame tag (3 bytes), start code 9d 01 2a, then 14-bit width / height (+2 bits scale).
    if (u8(b, 23) != 0x9d || u8(b, 24) != 0x01 || u8(b, 25) != 0x2a) return std::nullopt;
    return ImageSize{le16(b, 26) & 0x3FFF, le16(b, 28) & 0x3FFF};
  }
  if (chunk == "VP8L") {
    if (u8(b, 20) != 0x2f) return std::nullopt;
    const uint32_t bits = le32(b, 21);
    return ImageSize{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (chunk == "VP8X") {  // canvas width - 1, height - 1 (24 bits each) after 4 flag bytes
    return ImageSize{int64_t(le24(b, 24)) + 1, int64_t(le24(b, 27)) + 1};
  }
  return std::nullopt;
}

std::optional<ImageSize> probe_bmp(std::string_view b) {
  if (b.size() < 26) return std::nullopt;
  const uint32_t header = le32(b, 14);
  if (header == 12) return ImageSize{le16(b, 18), le16(b, 20)};  // BITMAPCOREHEADER
  if (header < 40) return std::nullopt;
  const int64_t w = static_cast<int32_t>(le32(b, 18));
  const int64_t h = static_cast<int32_t>(le32(b, 22));  // negative = top-down
  return ImageSize{std::llabs(w), std::llabs(h)};
}

}  // namespace

std::optional<ImageSize> probe_image_size(std::string_view bytes) {
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) return probe_png(bytes);
  if (starts_with(bytes, "\xff\xd8\xff")) return probe_jpeg(bytes);
  if (starts_with(bytes, "BM")) return probe_bmp(bytes);
  if (bytes.size() >= 12 && starts_with(bytes, "RIFF") && bytes.substr(8, 4) == "WEBP") return probe_webp(bytes);
  return std::nullopt;
}

}  // namespace refract::vision
