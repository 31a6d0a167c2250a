// Qwen2VLImageProcessor (transformers 4.50, slow PIL path), bit for bit:
// smart_resize -> PIL BICUBIC resize -> /255 -> CLIP normalise -> 2 temporal copies ->
// pixel_values [grid_t*grid_h*grid_w, 1176] in merge-unit row order.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "vision/image.h"

namespace refract::vision {

struct PreprocessConfig {
  int64_t min_pixels = 3136;      // 56*56
  int64_t max_pixels = 12845056;  // 16384*28*28 (the Hub's preprocessor_config.json)
  int64_t patch_size = 14;
  int64_t merge_size = 2;
  int64_t temporal_patch_size = 2;
};

struct ResizedSize {
  int64_t height = 0;
  int64_t width = 0;
};

// Throws refract::Error with the reference's message for sides < 28 px or aspect > 200.
ResizedSize smart_resize(int64_t height, int64_t width, const PreprocessConfig& cfg);

// PIL Image.resize(..., BICUBIC) on 8-bit RGB.
Image resize_bicubic(const Image& src, int64_t width, int64_t height);

struct Preprocessed {
  std::vector<float> pixel_values;        // [rows, 1176] row-major
  int64_t rows = 0;
  std::array<int64_t, 3> grid_thw{0, 0, 0};
  Image resized;                          // the resized uint8 image
  int64_t num_image_tokens() const { return grid_thw[0] * grid_thw[1] * grid_thw[2] / 4; }
};

// Throws refract::Error with the reference's message when smart_resize rejects the size.
Preprocessed preprocess_image(const Image& image, const PreprocessConfig& cfg);

// lut[c][u] = the float32 pixel value the processor produces for uint8 `u` in channel `c`:
// ((float)u / 255.0f - mean[c]) / std[c] in float32 (CLIP mean / std).
std::array<std::array<float, 256>, 3> normalize_lut();

}  // namespace refract::vision
