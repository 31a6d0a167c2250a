// PNG encoding into memory (libpng). The shapes world writes thousands of small files; encoding
// in memory lets it write them without one fsync each (see synth.cpp for the durability plan).
#pragma once
#include <string>

#include "vision/image.h"

namespace refract::data::shapes {

// 8-bit RGB PNG bytes. Deterministic for a given libpng / zlib build.
std::string encode_png(const vision::Image& image);

}  // namespace refract::data::shapes
