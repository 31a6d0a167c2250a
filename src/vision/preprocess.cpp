// Qwen2VLImageProcessor._preprocess for one image: resize, rescale, normalise, 2 temporal
// copies, and the patch flattening.
#include <cstring>

#include "common/check.h"
#include "vision/preprocess.h"

namespace refract::vision {
namespace {

// OpenAI CLIP mean / std as the processor stores them (float32 arrays).
constexpr float kMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

}  // namespace

std::array<std::array<float, 256>, 3> normalize_lut() {
  std::array<std::array<float, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    for (int u = 0; u < 256; ++u) {
      // ref: transformers rescale + normalize: (float)u / 255.0f, then a float32 subtract and a
      // float32 divide (not a multiply by 1/std, not double). x86-64 SSE evaluates float in float.
      const float rescaled = static_cast<float>(u) / 255.0f;
      const float centred = rescaled - kMean[c];
      lut[c][u] = centred / kStd[c];
    }
  }
  return lut;
}

Preprocessed preprocess_image(const Image& image, const PreprocessConfig& cfg) {
  REFRACT_CHECK(image.width > 0 && image.height > 0 &&
                image.rgb.size() == size_t(image.width * image.height * 3))
      << "preprocess_image: invalid image " << image.width << "x" << image.height;
  REFRACT_CHECK(cfg.patch_size > 0 && cfg.merge_size > 0 && cfg.temporal_patch_size > 0)
      << "patch_size, merge_size and temporal_patch_size must be positive";
  const ResizedSize size = smart_resize(image.height, image.width, cfg);
  REFRACT_CHECK(size.height > 0 && size.width > 0)
      << "smart_resize gave " << size.height << "x" << size.width << " for a " << image.height
      << "x" << image.width << " image (max_pixels " << cfg.max_pixels << " is too small)";

  Preprocessed out;
  out.resized = resize_bicubic(image, size.width, size.height);
  const int64_t ps = cfg.patch_size, ms = cfg.merge_size, tp = cfg.temporal_patch_size;
  const int64_t gh = size.height / ps, gw = size.width / ps;
  out.grid_thw = {1, gh, gw};  // one image: its frame repeated tp times fills one temporal patch
  out.rows = gh * gw;
  const int64_t cols = 3 * tp * ps * ps;
  out.pixel_values.resize(size_t(out.rows * cols));

  static const auto lut = normalize_lut();
  const int64_t W = size.width;
  const uint8_t* px = out.resized.rgb.data();
  std::vector<float> line(ps);
  // ref: reshape (gt, tp, C, gh/ms, ms, ps, gw/ms, ms, ps) -> permute (0,3,6,4,7,2,1,5,8):
  // rows (block row, block col, row in block, col in block); column ((c*tp + t)*ps + py)*ps + px.
  float* row = out.pixel_values.data();
  for (int64_t br = 0; br < gh / ms; ++br) {
    for (int64_t bc = 0; bc < gw / ms; ++bc) {
      for (int64_t dy = 0; dy < ms; ++dy) {
        for (int64_t dx = 0; dx < ms; ++dx, row += cols) {
          const int64_t y0 = (br * ms + dy) * ps, x0 = (bc * ms + dx) * ps;
          for (int c = 0; c < 3; ++c) {
            for (int64_t py = 0; py < ps; ++py) {
              const uint8_t* src = px + ((y0 + py) * W + x0) * 3 + c;
              for (int64_t i = 0; i < ps; ++i) line[i] = lut[c][src[i * 3]];
              // The temporal copies are identical (a still image is its own second frame).
              for (int64_t t = 0; t < tp; ++t)
                std::memcpy(row + ((c * tp + t) * ps + py) * ps, line.data(), ps * sizeof(float));
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace refract::vision
