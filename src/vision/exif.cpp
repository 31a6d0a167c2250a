#include "vision/exif.h"

#include <cstdint>
#include <cstring>

namespace refract::vision {
namespace {

struct TiffReader {
  std::string_view b;
  bool little = true;
  bool ok(size_t off, size_t n) const { return off <= b.size() && n <= b.size() - off; }
  uint32_t u16(size_t off) const {
    auto p = reinterpret_cast<const uint8_t*>(b.data()) + off;
    return little ? (p[0] | p[1] << 8) : (p[0] << 8 | p[1]);
  }
  uint32_t u32(size_t off) const {
    auto p = reinterpret_cast<const uint8_t*>(b.data()) + off;
    return little ? (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24)
                  : (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]));
  }
};

}  // namespace

int exif_orientation(std::string_view exif) {
  if (exif.size() >= 6 && std::memcmp(exif.data(), "Exif\0\0", 6) == 0) exif.remove_prefix(6);
  TiffReader r{exif};
  if (!r.ok(0, 8)) return 0;
  if (exif[0] == 'I' && exif[1] == 'I') {
    r.little = true;
  } else if (exif[0] == 'M' && exif[1] == 'M') {
    r.little = false;
  } else {
    return 0;
  }
  if (r.u16(2) != 42) return 0;
  const size_t ifd = r.u32(4);
  if (!r.ok(ifd, 2)) return 0;
  const uint32_t count = r.u16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + size_t(i) * 12;
    if (!r.ok(e, 12)) return 0;
    if (r.u16(e) != 0x0112) continue;
    const uint32_t type = r.u16(e + 2);
    // The value fits in the entry's 4-byte value field for SHORT / LONG / BYTE.
    uint32_t v = 0;
    if (type == 3 || type == 8) {
      v = r.u16(e + 8);
    } else if (type == 4 || type == 9) {
      v = r.u32(e + 8);
    } else if (type == 1 || type == 7) {
      v = static_cast<uint8_t>(exif[e + 8]);
    } else {
      return 0;
    }
    return (v >= 1 && v <= 8) ? static_cast<int>(v) : 0;
  }
  return 0;
}

Image apply_orientation(const Image& in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  const int64_t W = in.width, H = in.height;
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.rgb.resize(in.rgb.size());
  // ref: PIL ImageOps.exif_transpose: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
  // 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90. For each output (x, y) we name the
  // input pixel (sx, sy) it comes from.
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      int64_t sx = 0, sy = 0;
      switch (orientation) {
        case 2: sx = W - 1 - x; sy = y; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sx = x; sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        case 8: sx = W - 1 - y; sy = x; break;
      }
      const uint8_t* s = &in.rgb[(sy * W + sx) * 3];
      uint8_t* d = &out.rgb[(y * out.width + x) * 3];
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  }
  return out;
}

}  // namespace refract::vision
