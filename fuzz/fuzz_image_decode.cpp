// Fuzzes the image path of a request: a base64 data URL -> bytes -> header probe -> decoder
// (PNG / JPEG / WebP / BMP, sniffed from the bytes). As the server does, the decoded size is
// checked on the header first (decompression bombs cost nothing); every failure must be an
// ApiError or refract::Error, a decoded image must have the size its header declared (up to
// EXIF rotation) and exactly width * height * 3 bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/check.h"
#include "serve/api_error.h"
#include "serve/request_images.h"
#include "vision/image.h"
#include "vision/probe.h"

using namespace refract;

namespace {
constexpr int64_t kMaxPixels = 1 << 20;  // keeps the fuzzer under its RSS limit, as max_image_pixels does

void decode_checked(const std::string& bytes) {
  const auto size = vision::probe_image_size(bytes);
  if (!size || size->width <= 0 || size->height <= 0 || size->width > kMaxPixels / size->height) return;  // the server refuses these before decoding
  try {
    const vision::Image im = vision::decode_image_bytes(bytes, "fuzz");
    if (im.width <= 0 || im.height <= 0 || int64_t(im.rgb.size()) != im.width * im.height * 3) std::abort();
    const bool same = im.width == size->width && im.height == size->height;
    const bool rotated = im.width == size->height && im.height == size->width;
    if (!same && !rotated) std::abort();
  } catch (const Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  // The raw bytes as an image file.
  decode_checked(input);
  // The input as a data URL (base64 alphabet, whitespace and padding rules).
  try {
    const std::string bytes = serve::data_url_bytes("data:image/png;base64," + input, "url");
    if (bytes.size() > input.size()) std::abort();  // base64 only shrinks
    decode_checked(bytes);
  } catch (const serve::ApiError& e) {
    if (e.status != 400 || e.param != "url") std::abort();
  }
  try {
    (void)serve::data_url_bytes(input, "url");
  } catch (const serve::ApiError& e) {
    if (e.status != 400) std::abort();
  }
  return 0;
}
