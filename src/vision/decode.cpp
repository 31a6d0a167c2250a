// Format sniffing, EXIF orientation and the file / data-URL entry points of image.h.
#include <array>
#include <cstring>

#include "common/atomic_file.h"
#include "common/check.h"
#include "vision/decode_internal.h"
#include "vision/exif.h"
#include "vision/image.h"

namespace refract::vision {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::memcmp(s.data(), prefix.data(), prefix.size()) == 0;
}


}  // namespace

namespace detail {
void check_image_size(int64_t width, int64_t height, const std::string& name) {
  REFRACT_CHECK(width > 0 && height > 0) << name << ": invalid image size " << width << "x" << height;
  REFRACT_CHECK(width * height <= kMaxImagePixels)
      << name << ": image size (" << width * height << " pixels) exceeds limit of "
      << kMaxImagePixels << " pixels, could be decompression bomb DOS attack.";
}
}  // namespace detail

Image decode_image_bytes(std::string_view bytes, const std::string& name) {
  return decode_image_bytes(bytes, name, DecodeOptions{});
}

Image decode_image_bytes(std::string_view bytes, const std::string& name,
                         const DecodeOptions& options) {
  detail::Decoded d;
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) {
    d = detail::decode_png(bytes, name);
  } else if (starts_with(bytes, "\xff\xd8\xff")) {
    d = detail::decode_jpeg(bytes, name);
  } else if (starts_with(bytes, "BM")) {
    d = detail::decode_bmp(bytes, name);
  } else if (bytes.size() >= 12 && starts_with(bytes, "RIFF") &&
             std::memcmp(bytes.data() + 8, "WEBP", 4) == 0) {
    d = detail::decode_webp(bytes, name);
  } else {
    REFRACT_FAIL() << name << ": unsupported image format (expected PNG, JPEG, BMP or WebP; "
                   << bytes.size() << " bytes)";
  }
  if (options.alpha_on_white && !d.alpha.empty()) {
    // ref: qwen_vl_utils to_rgb: Image.new("RGB", size, white).paste(img, mask=alpha);
    // Pillow Paste.c BLEND: DIV255(out * (255 - a) + in * a) with DIV255(x) =
    // ((x + 128) >> 8 + x + 128) >> 8.
    uint8_t* p = d.image.rgb.data();
    for (size_t i = 0; i < d.alpha.size(); ++i) {
      const int a = d.alpha[i];
      for (int c = 0; c < 3; ++c, ++p) {
        const int t = 255 * (255 - a) + *p * a + 128;
        *p = static_cast<uint8_t>(((t >> 8) + t) >> 8);
      }
    }
  }
  if (!options.exif_transpose) return std::move(d.image);
  // ref: transformers image_utils.load_image -> PIL.ImageOps.exif_transpose.
  const int orientation = d.exif.empty() ? 0 : exif_orientation(d.exif);
  if (orientation >= 2) return apply_orientation(d.image, orientation);
  return std::move(d.image);
}

Image decode_image_file(const std::string& path) { return decode_image_file(path, {}); }

Image decode_image_file(const std::string& path, const DecodeOptions& options) {
  const std::string bytes = read_file(path);
  return decode_image_bytes(bytes, path, options);
}

std::string base64_decode(std::string_view in, const std::string& name) {
  static const auto table = [] {
    std::array<int8_t, 256> t;
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(a[i])] = static_cast<int8_t>(i);
    t['-'] = 62;
    t['_'] = 63;
    return t;
  }();
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<uint8_t>(in[i]);
    if (c == '=') break;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    const int v = table[c];
    REFRACT_CHECK(v >= 0) << name << ": invalid base64 character at offset " << i;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

Image decode_data_url(std::string_view url) {
  // ref: transformers load_image: "data:image/...;base64,<payload>".
  const std::string shown = std::string(url.substr(0, 40)) + (url.size() > 40 ? "..." : "");
  REFRACT_CHECK(starts_with(url, "data:")) << "not a data URL: " << shown;
  const size_t comma = url.find(',');
  REFRACT_CHECK(comma != std::string_view::npos) << "data URL without a comma: " << shown;
  const std::string_view header = url.substr(0, comma);
  REFRACT_CHECK(header.size() >= 7 && header.substr(header.size() - 7) == ";base64")
      << "data URL is not base64-encoded: " << shown;
  const std::string bytes = base64_decode(url.substr(comma + 1), shown);
  return decode_image_bytes(bytes, std::string(header) + ",...");
}

}  // namespace refract::vision
