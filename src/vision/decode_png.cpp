// PNG through libpng, with every sample conversion done here (no libpng transforms) so the
// result matches PIL's mode choice followed by .convert("RGB").
#include <png.h>

#include <csetjmp>
#include <cstring>

#include "common/check.h"
#include "vision/decode_internal.h"

namespace refract::vision::detail {
namespace {

struct Reader {
  std::string_view bytes;
  size_t pos = 0;
  char message[256] = {0};
};

void read_fn(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (r->bytes.size() - r->pos < n) png_error(png, "file is truncated");
  std::memcpy(out, r->bytes.data() + r->pos, n);
  r->pos += n;
}

void error_fn(png_structp png, png_const_charp msg) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void warning_fn(png_structp, png_const_charp) {}

// Sample `i` of a row packed at `bit_depth` bits per sample (MSB first; 16-bit big-endian).
inline uint32_t sample(const uint8_t* row, int64_t i, int bit_depth) {
  switch (bit_depth) {
    case 8: return row[i];
    case 16: return uint32_t(row[2 * i]) << 8 | row[2 * i + 1];
    case 1: return (row[i >> 3] >> (7 - (i & 7))) & 1;
    case 2: return (row[i >> 2] >> (6 - 2 * (i & 3))) & 3;
    case 4: return (row[i >> 1] >> (4 - 4 * (i & 1))) & 15;
  }
  return 0;
}

// Gray sample -> 8 bits. ref: Pillow PngImagePlugin _MODES + Unpack.c: 1-bit opens as "1"
// (0/255), 2- and 4-bit as "L;2"/"L;4" (scaled by 85/17), 16-bit as "I;16B" -> mode "I",
// which .convert("RGB") CLAMPS to 0..255 (it does not scale: 300 -> 255, 200 -> 200).
inline uint8_t gray8(uint32_t v, int bit_depth) {
  switch (bit_depth) {
    case 1: return v ? 255 : 0;
    case 2: return static_cast<uint8_t>(v * 85);
    case 4: return static_cast<uint8_t>(v * 17);
    case 16: return static_cast<uint8_t>(v > 255 ? 255 : v);
  }
  return static_cast<uint8_t>(v);
}

}  // namespace

Decoded decode_png(std::string_view bytes, const std::string& name) {
  Reader reader;
  reader.bytes = bytes;
  Decoded out;
  std::vector<uint8_t> raw;
  std::vector<png_bytep> rows;
  std::vector<uint8_t> palette;  // 256 RGB triples; missing entries are black
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, error_fn, warning_fn);
  REFRACT_CHECK(png) << name << ": cannot create a PNG reader";
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    REFRACT_FAIL() << name << ": cannot create a PNG reader";
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    REFRACT_FAIL() << name << ": invalid PNG: " << reader.message;
  }
  png_set_read_fn(png, &reader, read_fn);
  // PIL does not verify ancillary-chunk CRCs strictly either; keep critical ones strict.
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_WARN_USE);
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  const int color_type = png_get_color_type(png, info);
  try {
    check_image_size(width, height, name);
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    palette.assign(256 * 3, 0);
    png_colorp plte = nullptr;
    int n = 0;
    if (png_get_PLTE(png, info, &plte, &n)) {
      for (int i = 0; i < n && i < 256; ++i) {
        palette[i * 3 + 0] = plte[i].red;
        palette[i * 3 + 1] = plte[i].green;
        palette[i * 3 + 2] = plte[i].blue;
      }
    }
  }
  // tRNS is deliberately ignored: .convert("RGB") drops transparency (a palette image
  // with tRNS only triggers PIL's "should be converted to RGBA" warning).
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  raw.resize(rowbytes * height);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = raw.data() + y * rowbytes;
  png_read_image(png, rows.data());
  png_read_end(png, info);
#ifdef PNG_eXIf_SUPPORTED
  png_bytep exif = nullptr;
  png_uint_32 exif_len = 0;
  if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif && exif_len > 0)
    out.exif.assign(reinterpret_cast<const char*>(exif), exif_len);
#endif
  png_destroy_read_struct(&png, &info, nullptr);

  Image& img = out.image;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(width) * height * 3);
  if (color_type == PNG_COLOR_TYPE_RGB_ALPHA) out.alpha.resize(size_t(width) * height);
  for (png_uint_32 y = 0; y < height; ++y) {
    const uint8_t* row = raw.data() + y * rowbytes;
    uint8_t* dst = img.rgb.data() + size_t(y) * width * 3;
    for (png_uint_32 x = 0; x < width; ++x, dst += 3) {
      switch (color_type) {
        case PNG_COLOR_TYPE_GRAY:
          dst[0] = dst[1] = dst[2] = gray8(sample(row, x, bit_depth), bit_depth);
          break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
          // "LA" / "LA;16B": 16-bit keeps the high byte; alpha dropped.
          dst[0] = dst[1] = dst[2] = static_cast<uint8_t>(
              bit_depth == 16 ? sample(row, 2 * x, 16) >> 8 : sample(row, 2 * x, 8));
          break;
        case PNG_COLOR_TYPE_PALETTE: {
          const uint8_t* p = &palette[sample(row, x, bit_depth) * 3];
          dst[0] = p[0];
          dst[1] = p[1];
          dst[2] = p[2];
          break;
        }
        case PNG_COLOR_TYPE_RGB:
        case PNG_COLOR_TYPE_RGB_ALPHA: {
          // ref: Pillow "RGB;16B" / "RGBA;16B" unpackers keep the high byte; alpha dropped
          // (transformers' load_image does not composite).
          const int channels = color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
          for (int c = 0; c < 3; ++c) {
            const uint32_t v = sample(row, int64_t(x) * channels + c, bit_depth);
            dst[c] = static_cast<uint8_t>(bit_depth == 16 ? v >> 8 : v);
          }
          if (channels == 4) {
            const uint32_t a = sample(row, int64_t(x) * 4 + 3, bit_depth);
            out.alpha[size_t(y) * width + x] = static_cast<uint8_t>(bit_depth == 16 ? a >> 8 : a);
          }
          break;
        }
        default:
          REFRACT_FAIL() << name << ": unsupported PNG colour type " << color_type;
      }
    }
  }
  return out;
}

}  // namespace refract::vision::detail
