// Coordinate conventions of predicted boxes, made explicit per dataset / model.
#pragma once
#include <string>

#include "metrics/box.h"
#include "rewards/reward.h"

namespace refract::rewards {

enum class CoordMode {
  // Qwen2.5-VL: absolute pixels of the smart-resized image; mapped to the original by
  // x * width / resized_width (resized_width = grid_w * 14), same for y.
  // ref: VLM-R1 grpo_rec.py rescales the predicted box before the IoU.
  absolute_resized,
  // Qwen2-VL / Visual-RFT: integers in 0..1000, mapped by x / 1000 * width.
  normalized_1000,
  // Already in original-image pixels.
  absolute,
};

// "absolute_resized" | "normalized_1000" | "absolute"; throws naming the allowed values.
CoordMode parse_coord_mode(const std::string& name);
const char* coord_mode_name(CoordMode mode);

// Maps a predicted box to original-image pixels. When the sizes it needs are unknown (0), the
// box is returned unchanged (a no-op is safer than dividing by zero).
metrics::Box to_original(const metrics::Box& box, const ImageSize& image, CoordMode mode);

}  // namespace refract::rewards
