// smart_resize exactly as transformers 4.50 computes it (Python semantics in double).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "vision/preprocess.h"

namespace refract::vision {
namespace {

// Python's repr(float): shortest round-trip digits, always with a '.' or an exponent.
std::string python_float_repr(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

ResizedSize smart_resize(int64_t height, int64_t width, const PreprocessConfig& cfg) {
  const int64_t factor = cfg.patch_size * cfg.merge_size;
  // ref: transformers/models/qwen2_vl/image_processing_qwen2_vl.py@4.50 smart_resize:
  // exact messages, the ratio check uses float division and "> 200" (200 itself passes).
  REFRACT_CHECK(height >= factor && width >= factor)
      << "height:" << height << " or width:" << width << " must be larger than factor:" << factor;
  const double ratio =
      static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
  REFRACT_CHECK(!(ratio > 200.0))
      << "absolute aspect ratio must be smaller than 200, got " << python_float_repr(ratio);
  const double f = static_cast<double>(factor);
  // Python round() is half-to-even: nearbyint in the default FE_TONEAREST mode, NOT std::round
  // (70 / 28 = 2.5 -> 2 -> 56).
  int64_t h_bar = static_cast<int64_t>(std::nearbyint(static_cast<double>(height) / f)) * factor;
  int64_t w_bar = static_cast<int64_t>(std::nearbyint(static_cast<double>(width) / f)) * factor;
  if (h_bar * w_bar > cfg.max_pixels) {
    const double beta = std::sqrt(static_cast<double>(height * width) /
                                  static_cast<double>(cfg.max_pixels));
    // Left to right, as written: height / beta / factor (not height / (beta * factor)).
    // No max(factor, ...) guard in 4.50: this may return 0 for extreme inputs.
    h_bar = static_cast<int64_t>(std::floor(static_cast<double>(height) / beta / f)) * factor;
    w_bar = static_cast<int64_t>(std::floor(static_cast<double>(width) / beta / f)) * factor;
  } else if (h_bar * w_bar < cfg.min_pixels) {
    const double beta = std::sqrt(static_cast<double>(cfg.min_pixels) /
                                  static_cast<double>(height * width));
    h_bar = static_cast<int64_t>(std::ceil(static_cast<double>(height) * beta / f)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(static_cast<double>(width) * beta / f)) * factor;
  }
  return {h_bar, w_bar};
}

}  // namespace refract::vision
