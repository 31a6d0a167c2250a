#include "rewards/coords.h"

#include "common/check.h"

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
    if (im.resized_width <= 0 || im.resized_height <= 0 || im.width <= 0 || im.height <= 0)
      return b;
    // ref: VLM-R1 computes x * W / (grid_w * 14): multiply first, then divide.
    const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
    const double rw = static_cast<double>(im.resized_width);
    const double rh = static_cast<double>(im.resized_height);
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
