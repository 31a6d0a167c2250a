// WebP through libwebp (the library Pillow links). The RIFF "EXIF" chunk, when present, is
// returned for orientation like Pillow's info["exif"].
#include <webp/decode.h>

#include <cstring>

#include "common/check.h"
#include "vision/decode_internal.h"

namespace refract::vision::detail {

Decoded decode_webp(std::string_view bytes, const std::string& name) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  WebPBitstreamFeatures features;
  REFRACT_CHECK(WebPGetFeatures(data, bytes.size(), &features) == VP8_STATUS_OK)
      << name << ": invalid WebP header";
  REFRACT_CHECK(!features.has_animation)
      << name << ": animated WebP is not supported (decode the first frame elsewhere)";
  check_image_size(features.width, features.height, name);
  Decoded out;
  Image& img = out.image;
  img.width = features.width;
  img.height = features.height;
  img.rgb.resize(size_t(img.width) * img.height * 3);
  if (features.has_alpha) {
    // PIL opens it as RGBA; the caller drops or composites the alpha.
    std::vector<uint8_t> rgba(size_t(img.width) * img.height * 4);
    const uint8_t* ok = WebPDecodeRGBAInto(data, bytes.size(), rgba.data(), rgba.size(),
                                           static_cast<int>(img.width * 4));
    REFRACT_CHECK(ok) << name << ": invalid WebP data";
    out.alpha.resize(size_t(img.width) * img.height);
    for (size_t i = 0; i < out.alpha.size(); ++i) {
      std::memcpy(&img.rgb[i * 3], &rgba[i * 4], 3);
      out.alpha[i] = rgba[i * 4 + 3];
    }
  } else {
    const uint8_t* ok = WebPDecodeRGBInto(data, bytes.size(), img.rgb.data(), img.rgb.size(),
                                          static_cast<int>(img.width * 3));
    REFRACT_CHECK(ok) << name << ": invalid WebP data";
  }
  // RIFF: "RIFF" size "WEBP" then chunks (fourcc, le32 size, payload padded to even).
  size_t pos = 12;
  while (pos + 8 <= bytes.size()) {
    const uint32_t n = uint32_t(data[pos + 4]) | uint32_t(data[pos + 5]) << 8 |
                       uint32_t(data[pos + 6]) << 16 | uint32_t(data[pos + 7]) << 24;
    if (n > bytes.size() - pos - 8) break;
    if (std::memcmp(data + pos, "EXIF", 4) == 0) {
      out.exif.assign(bytes.data() + pos + 8, n);
      break;
    }
    pos += 8 + n + (n & 1);
  }
  return out;
}

}  // namespace refract::vision::detail
