// Header-only image size probe: the width and height a PNG / JPEG / WebP / BMP declares, read
// from its header without decoding (and without allocating pixels). The server checks the
// decoded size against its limit BEFORE decoding, so a tiny file declaring 100000 x 100000
// pixels (a decompression bomb) costs nothing.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace refract::vision {

struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
};

// The size declared by the header, or nullopt when the bytes are not a PNG / JPEG / WebP /
// BMP whose header (up to the first SOF marker for JPEG) is complete and well formed.
std::optional<ImageSize> probe_image_size(std::string_view bytes);

}  // namespace refract::vision
