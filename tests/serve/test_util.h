// Helpers shared by the serve tests: base64 (RFC 4648, written from the spec), temp dirs,
// small PNGs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>

#include "temp_dir.h"
#include "vision/image.h"

namespace refract::serve::testing {

inline std::string base64_encode(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// A fresh directory under the system temp dir, removed by the destructor (tests/temp_dir.h).
struct TempDir {
 private:
  ::refract::testing::TempDir dir_;

 public:
  std::filesystem::path path;
  explicit TempDir(const std::string& tag)
      : dir_("serve_" + tag + "_" + std::to_string(std::random_device{}())), path(dir_.path()) {}
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A deterministic pseudo-random RGB image (so every pixel matters to the vision tower).
inline vision::Image noise_image(int64_t width, int64_t height, uint32_t seed) {
  vision::Image im;
  im.width = width;
  im.height = height;
  im.rgb.resize(size_t(width * height * 3));
  std::mt19937 rng(seed);
  for (auto& b : im.rgb) b = static_cast<uint8_t>(rng() & 0xff);
  return im;
}

// Decompression-bomb headers: tiny, well-formed files that declare huge images.
inline uint32_t crc32_of(const std::string& bytes) {  // PNG / zlib CRC-32 (ISO 3309), bitwise
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}
inline std::string be32_bytes(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}
inline std::string le_bytes(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xff);
  return s;
}
inline std::string png_chunk(const std::string& type, const std::string& data) {
  return be32_bytes(uint32_t(data.size())) + type + data + be32_bytes(crc32_of(type + data));
}
// IHDR (8-bit RGB) + one IDAT of a few zero rows (valid zlib) + IEND: libpng would allocate
// rows for the whole declared size.
inline std::string png_header(uint32_t width, uint32_t height) {
  const std::string ihdr = be32_bytes(width) + be32_bytes(height) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string idat("\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01", 10);  // zlib of one zero byte
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}
// SOI, a baseline SOF0 (3 components) declaring the size, EOI.
inline std::string jpeg_header(uint16_t width, uint16_t height) {
  std::string s("\xff\xd8", 2);
  s += std::string("\xff\xc0\x00\x11\x08", 5);
  s += char(height >> 8);
  s += char(height & 0xff);
  s += char(width >> 8);
  s += char(width & 0xff);
  s += std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 10);
  s += std::string("\xff\xd9", 2);
  return s;
}
inline std::string riff_webp(const std::string& chunks) {
  return "RIFF" + le_bytes(uint32_t(4 + chunks.size()), 4) + "WEBP" + chunks;
}
// VP8X (extended) canvas of width x height (up to 2^24 each).
inline std::string webp_vp8x_header(uint32_t width, uint32_t height) {
  const std::string data = std::string(4, '\0') + le_bytes(width - 1, 3) + le_bytes(height - 1, 3);
  return riff_webp("VP8X" + le_bytes(uint32_t(data.size()), 4) + data + "VP8L" + le_bytes(5, 4) +
                   std::string("\x2f\x00\x00\x00\x00\x00", 6));
}
// Lossless VP8L of width x height (up to 16384 each).
inline std::string webp_vp8l_header(uint32_t width, uint32_t height) {
  const uint32_t bits = (width - 1) | ((height - 1) << 14);
  const std::string data = std::string("\x2f", 1) + le_bytes(bits, 4) + std::string(16, '\0');
  return riff_webp("VP8L" + le_bytes(uint32_t(data.size()), 4) + data);
}
// BITMAPINFOHEADER, 24 bits per pixel, no pixel data.
inline std::string bmp_header(int32_t width, int32_t height) {
  std::string s = "BM" + le_bytes(54, 4) + le_bytes(0, 4) + le_bytes(54, 4);
  s += le_bytes(40, 4) + le_bytes(uint32_t(width), 4) + le_bytes(uint32_t(height), 4) + le_bytes(1, 2) + le_bytes(24, 2);
  s += std::string(24, '\0');
  return s;
}

}  // namespace refract::serve::testing
