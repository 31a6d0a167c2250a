// Windows BMP by hand: core (12-byte) and info (40..124-byte) headers, 1/4/8-bit palettes,
// 16/24/32-bit with or without BI_BITFIELDS, bottom-up or top-down. No RLE.
#include <cstring>

#include "common/check.h"
#include "vision/decode_internal.h"

namespace refract::vision::detail {
namespace {

uint32_t le16(const uint8_t* p) { return p[0] | p[1] << 8; }
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

struct Channel {
  uint32_t mask = 0;
  int shift = 0;
  int bits = 0;
  uint8_t get(uint32_t px) const {
    if (bits == 0) return 0;
    const uint32_t v = (px & mask) >> shift;
    if (bits == 8) return static_cast<uint8_t>(v);
    // ref: Pillow Unpack.c "BGR;15"/"BGR;16": value * 255 / max, integer division.
    if (bits < 8) return static_cast<uint8_t>(v * 255 / ((1u << bits) - 1));
    return static_cast<uint8_t>(v >> (bits - 8));
  }
};

Channel channel(uint32_t mask) {
  Channel c;
  c.mask = mask;
  if (!mask) return c;
  while (!((mask >> c.shift) & 1)) ++c.shift;
  while (c.shift + c.bits < 32 && ((mask >> (c.shift + c.bits)) & 1)) ++c.bits;
  return c;
}

}  // namespace

Decoded decode_bmp(std::string_view bytes, const std::string& name) {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  REFRACT_CHECK(size >= 26 && b[0] == 'B' && b[1] == 'M') << name << ": not a BMP file";
  const uint32_t pixel_offset = le32(b + 10);
  const uint32_t header_size = le32(b + 14);
  REFRACT_CHECK(header_size == 12 || (header_size >= 40 && header_size <= 124))
      << name << ": unsupported BMP header size " << header_size;
  REFRACT_CHECK(14 + size_t(header_size) <= size) << name << ": truncated BMP header";
  int64_t width = 0, height = 0;
  uint32_t bpp = 0, compression = 0, colors_used = 0;
  size_t palette_entry = 4;
  if (header_size == 12) {
    width = le16(b + 18);
    height = static_cast<int16_t>(le16(b + 20));
    bpp = le16(b + 24);
    palette_entry = 3;
  } else {
    width = static_cast<int32_t>(le32(b + 18));
    height = static_cast<int32_t>(le32(b + 22));
    bpp = le16(b + 28);
    compression = le32(b + 30);
    colors_used = le32(b + 46);
  }
  const bool top_down = height < 0;
  if (top_down) height = -height;
  check_image_size(width, height, name);
  REFRACT_CHECK(compression == 0 || compression == 3 || compression == 6)
      << name << ": unsupported BMP compression " << compression << " (RLE is not supported)";
  REFRACT_CHECK(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32)
      << name << ": unsupported BMP bit depth " << bpp;

  // Channel masks for 16/32-bit: BI_BITFIELDS masks follow a 40-byte header or sit inside a
  // larger one; without them the defaults are 5-5-5 (16-bit) and BGRX (32-bit).
  Channel red, green, blue;
  if (bpp == 16 || bpp == 32) {
    if (compression == 3 || compression == 6) {
      REFRACT_CHECK(14 + 40 + 12 <= size) << name << ": truncated BMP masks";
      red = channel(le32(b + 54));
      green = channel(le32(b + 58));
      blue = channel(le32(b + 62));
    } else if (bpp == 16) {
      red = channel(0x7c00);
      green = channel(0x03e0);
      blue = channel(0x001f);
    } else {
      red = channel(0xff0000);
      green = channel(0xff00);
      blue = channel(0xff);
    }
  }

  std::vector<uint8_t> palette;
  if (bpp <= 8) {
    const uint32_t n = colors_used ? colors_used : (1u << bpp);
    size_t palette_start = 14 + header_size;
    if (compression == 3 && header_size == 40) palette_start += 12;
    palette.assign(256 * 3, 0);
    for (uint32_t i = 0; i < n && i < 256; ++i) {
      const size_t off = palette_start + i * palette_entry;
      REFRACT_CHECK(off + 3 <= size) << name << ": truncated BMP palette";
      palette[i * 3 + 0] = b[off + 2];
      palette[i * 3 + 1] = b[off + 1];
      palette[i * 3 + 2] = b[off + 0];
    }
  }

  const size_t stride = ((size_t(width) * bpp + 31) / 32) * 4;
  REFRACT_CHECK(pixel_offset <= size && stride * size_t(height) <= size - pixel_offset)
      << name << ": truncated BMP pixel data (" << size << " bytes)";
  Decoded out;
  Image& img = out.image;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(width) * height * 3);
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row = b + pixel_offset + stride * size_t(top_down ? y : height - 1 - y);
    uint8_t* dst = img.rgb.data() + size_t(y) * width * 3;
    for (int64_t x = 0; x < width; ++x, dst += 3) {
      switch (bpp) {
        case 1:
        case 4:
        case 8: {
          uint32_t idx;
          if (bpp == 8) {
            idx = row[x];
          } else if (bpp == 4) {
            idx = (row[x >> 1] >> (x & 1 ? 0 : 4)) & 15;
          } else {
            idx = (row[x >> 3] >> (7 - (x & 7))) & 1;
          }
          std::memcpy(dst, &palette[idx * 3], 3);
          break;
        }
        case 24:
          dst[0] = row[x * 3 + 2];
          dst[1] = row[x * 3 + 1];
          dst[2] = row[x * 3 + 0];
          break;
        case 16:
        case 32: {
          const uint32_t px = bpp == 16 ? le16(row + x * 2) : le32(row + x * 4);
          dst[0] = red.get(px);
          dst[1] = green.get(px);
          dst[2] = blue.get(px);
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace refract::vision::detail
