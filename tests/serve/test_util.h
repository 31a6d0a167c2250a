// Helpers shared by the serve tests: base64 (RFC 4648, written from the spec), temp dirs,
// small PNGs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>

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

// A fresh directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("refract_serve_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
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

}  // namespace refract::serve::testing
