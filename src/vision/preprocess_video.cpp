// Qwen2VLImageProcessor._preprocess for a video: the image path's resize and normalisation
// per frame, then temporal patches of temporal_patch_size consecutive frames.
#include "vision/preprocess_video.h"

#include <cstring>

#include "common/check.h"

namespace refract::vision {

PreprocessedVideo preprocess_video(const std::vector<Image>& frames, const PreprocessConfig& cfg) {
  REFRACT_CHECK(!frames.empty()) << "preprocess_video: a video needs at least one frame";
  REFRACT_CHECK(cfg.patch_size > 0 && cfg.merge_size > 0 && cfg.temporal_patch_size > 0)
      << "patch_size, merge_size and temporal_patch_size must be positive";
  const Image& first = frames[0];
  for (size_t i = 0; i < frames.size(); ++i) {
    const Image& f = frames[i];
    REFRACT_CHECK(f.width > 0 && f.height > 0 && f.rgb.size() == size_t(f.width * f.height * 3))
        << "preprocess_video: frame " << i << " is not a valid image";
    REFRACT_CHECK(f.width == first.width && f.height == first.height)
        << "preprocess_video: frame " << i << " is " << f.width << "x" << f.height << ", frame 0 is " << first.width
        << "x" << first.height << " (the frames of a video share one size)";
  }
  // ref: _preprocess: every frame goes through smart_resize (same size in, same size out)
  const ResizedSize size = smart_resize(first.height, first.width, cfg);
  REFRACT_CHECK(size.height > 0 && size.width > 0)
      << "smart_resize gave " << size.height << "x" << size.width << " for " << first.height << "x" << first.width
      << " frames (max_pixels " << cfg.max_pixels << " is too small)";
  std::vector<Image> resized;
  resized.reserve(frames.size());
  for (const Image& f : frames) resized.push_back(resize_bicubic(f, size.width, size.height));
  const int64_t tp = cfg.temporal_patch_size, ps = cfg.patch_size, ms = cfg.merge_size;
  // ref: frame count not a multiple of temporal_patch_size: the last frame is repeated
  while (static_cast<int64_t>(resized.size()) % tp != 0) resized.push_back(resized.back());

  PreprocessedVideo out;
  const int64_t gt = static_cast<int64_t>(resized.size()) / tp;
  const int64_t gh = size.height / ps, gw = size.width / ps;
  out.grid_thw = {gt, gh, gw};
  out.rows = gt * gh * gw;
  const int64_t cols = 3 * tp * ps * ps;
  out.pixel_values.resize(size_t(out.rows * cols));
  static const auto lut = normalize_lut();
  const int64_t W = size.width;
  // ref: reshape (gt, tp, C, gh/ms, ms, ps, gw/ms, ms, ps) -> permute (0,3,6,4,7,2,1,5,8):
  // rows (temporal patch, block row, block col, row in block, col in block); column
  // ((c*tp + t)*ps + py)*ps + px, t = the frame within the temporal patch.
  float* row = out.pixel_values.data();
  for (int64_t f = 0; f < gt; ++f) {
    for (int64_t br = 0; br < gh / ms; ++br) {
      for (int64_t bc = 0; bc < gw / ms; ++bc) {
        for (int64_t dy = 0; dy < ms; ++dy) {
          for (int64_t dx = 0; dx < ms; ++dx, row += cols) {
            const int64_t y0 = (br * ms + dy) * ps, x0 = (bc * ms + dx) * ps;
            for (int c = 0; c < 3; ++c) {
              for (int64_t t = 0; t < tp; ++t) {
                const uint8_t* px = resized[size_t(f * tp + t)].rgb.data();
                for (int64_t py = 0; py < ps; ++py) {
                  const uint8_t* src = px + ((y0 + py) * W + x0) * 3 + c;
                  float* dst = row + ((c * tp + t) * ps + py) * ps;
                  for (int64_t i = 0; i < ps; ++i) dst[i] = lut[c][src[i * 3]];
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace refract::vision
