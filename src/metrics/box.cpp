#include "metrics/box.h"

#include <algorithm>

namespace refract::metrics {

double Box::area() const { return std::max(0.0, width()) * std::max(0.0, height()); }

static double intersection(const Box& a, const Box& b) {
  const double w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const double h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  return (w > 0 && h > 0) ? w * h : 0.0;
}

double iou(const Box& a, const Box& b) {
  const double inter = intersection(a, b);
  const double uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

double giou(const Box& a, const Box& b) {
  const double inter = intersection(a, b);
  const double uni = a.area() + b.area() - inter;
  const double i = uni > 0 ? inter / uni : 0.0;
  const Box c{std::min(a.x1, b.x1), std::min(a.y1, b.y1), std::max(a.x2, b.x2),
              std::max(a.y2, b.y2)};
  const double enclosing = c.area();
  if (enclosing <= 0) return i;
  return i - (enclosing - uni) / enclosing;
}

double iou_vlm_r1(const Box& a, const Box& b) {
  const double ix1 = std::max(a.x1, b.x1);
  const double iy1 = std::max(a.y1, b.y1);
  const double ix2 = std::min(a.x2 - 1, b.x2 - 1);
  const double iy2 = std::min(a.y2 - 1, b.y2 - 1);
  double inter = 0;
  if (ix1 < ix2 && iy1 < iy2) inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1);
  const double uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  // ref: VLM-R1 divides unguarded (ZeroDivisionError inside its try -> reward 0).
  return uni != 0 ? inter / uni : 0.0;
}

}  // namespace refract::metrics
