// Axis-aligned boxes and their overlap measures, shared by rewards and evaluation.
#pragma once

namespace refract::metrics {

// Corners in pixels (or any one unit): [x1, y1, x2, y2], x2 >= x1 for a valid box.
struct Box {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  double width() const { return x2 - x1; }
  double height() const { return y2 - y1; }
  // Area of a degenerate (inverted) box is 0.
  double area() const;
  double center_x() const { return (x1 + x2) / 2; }
  double center_y() const { return (y1 + y2) / 2; }
};

// Continuous IoU: intersection / union of the two rectangles; 0 when the union is empty.
double iou(const Box& a, const Box& b);

// Generalised IoU (Rezatofighi et al. 2019): IoU - (C - U) / C with C the enclosing box;
// range -1..1. Visual-RFT's LISA reward is giou + 1.
double giou(const Box& a, const Box& b);

// VLM-R1's REC IoU, kept for reproduction: the intersection treats coordinates as inclusive
// pixel indices, (min(x2) - 1 - max(x1) + 1), while the areas use (x2 - x1)(y2 - y1), and an
// overlap counts only if max(x1) < min(x2) - 1 strictly.
// ref: VLM-R1 src/open-r1-multimodal/src/open_r1/grpo_rec.py iou_reward
double iou_vlm_r1(const Box& a, const Box& b);

}  // namespace refract::metrics
