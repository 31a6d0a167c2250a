// Per-format decoders behind decode_image_bytes. Each returns the image as stored (before
// EXIF orientation) converted to 8-bit RGB the way PIL's .convert("RGB") does, and the raw
// EXIF block (TIFF header onwards) when the file carries one.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vision/image.h"

namespace refract::vision::detail {

struct Decoded {
  Image image;
  std::string exif;  // TIFF bytes ("II*\0" / "MM\0*" ...), empty when absent
  // [height * width] alpha when PIL would open the file as mode RGBA, else empty.
  std::vector<uint8_t> alpha;
};

// Rejects images over Pillow's decompression-bomb limit before any pixel buffer is allocated.
// ref: PIL.Image.MAX_IMAGE_PIXELS = 89478485; Image.open raises DecompressionBombError above 2x.
constexpr int64_t kMaxImagePixels = 2 * 89478485;
void check_image_size(int64_t width, int64_t height, const std::string& name);

Decoded decode_png(std::string_view bytes, const std::string& name);
Decoded decode_jpeg(std::string_view bytes, const std::string& name);
Decoded decode_bmp(std::string_view bytes, const std::string& name);
Decoded decode_webp(std::string_view bytes, const std::string& name);

}  // namespace refract::vision::detail
