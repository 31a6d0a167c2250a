// EXIF orientation: read tag 0x0112 from a TIFF block and apply it the way
// PIL.ImageOps.exif_transpose does (orientations 2-8; 5-8 swap width and height).
#pragma once
#include <string_view>

#include "vision/image.h"

namespace refract::vision {

// The Orientation tag of IFD0 (1..8), or 0 when absent or unreadable. Accepts the block with
// or without the "Exif\0\0" prefix. Never throws: a broken EXIF block is ignored, as PIL does.
int exif_orientation(std::string_view exif);

// Returns `image` transposed for `orientation` (1 or unknown values: unchanged).
Image apply_orientation(const Image& image, int orientation);

}  // namespace refract::vision
