#include "rewards/coords.h"

#include "common/check.h"
#include "vision/preprocess.h"

namespace refract::rewards {

CoordMode parse_coord_mode(const std::string& name) {
  if (name == "absolute_resized") return CoordMode::absolute_resized;
  if (name == "normalized_1000") return CoordMode::normalized_1000;
  if (name == "absolute") return CoordMode::absolute;
  REFRACT_FAIL() << "coords: '" << name
                 << "' is not one of: absolute_resized, normalized_1000, absolute";
  return CoordMode::absolute;
}

const char* coord_mode_name(CoordMode mode) {
  switch (mode) {
    case CoordMode::absolute_resized: return "absolute_resized";
    case CoordMode::normalized_1000: return "normalized_1000";
    case CoordMode::absolute: return "absolute";
  }
  return "?";
}

metrics::Box to_original(const metrics::Box& b, const ImageSize& im, CoordMode mode) {
  if (mode == CoordMode::absolute_resized) {
    // No image (a text-only sample): nothing to map from; the caller that reads image sizes
    // from a file (refract score) rejects that case itself.
    if (im.width <= 0 || im.height <= 0) return b;
    int64_t resized_w = im.resized_width, resized_h = im.resized_height;
    if (resized_w <= 0 || resized_h <= 0) {
      // Not given: what the Qwen2-VL processor (Hub defaults) resizes this image to.
      const vision::ResizedSize r = vision::smart_resize(im.height, im.width, vision::PreprocessConfig{});
      resized_w = r.width, resized_h = r.height;
    }
    // ref: VLM-R1 computes x * W / (grid_w * 14): multiply first, then divide.
    const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
    const double rw = static_cast<double>(resized_w);
    const double rh = static_cast<double>(resized_h);
    return {b.x1 * w / rw, b.y1 * h / rh, b.x2 * w / rw, b.y2 * h / rh};
  }
  if (mode == CoordMode::normalized_1000) {
    if (im.width <= 0 || im.height <= 0) return b;
    return {b.x1 / 1000.0 * im.width, b.y1 / 1000.0 * im.height, b.x2 / 1000.0 * im.width,
            b.y2 / 1000.0 * im.height};
  }
  return b;
}

}  // namespace refract::rewards
