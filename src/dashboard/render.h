// `refract dashboard --render DIR`: the dashboard's pictures as PNG files, without a browser
// (cairo draws, vision::write_png writes atomically).
//   curves.png     one panel per metric (reward, each reward function, loss, KL, entropy,
//                  completion length, clip ratio, learning rate), every run overlaid
//   rollouts.png   the latest logged step of the first run with completions: per prompt its
//                  image with the ground-truth box and the G sampled boxes coloured by reward
//   rollouts.json  where each image and box went in rollouts.png (pixels), for checks
#pragma once
#include <string>
#include <vector>

#include "dashboard/views.h"

namespace refract::dashboard {

struct RenderResult {
  std::vector<std::string> files;
};

RenderResult render_pngs(Dashboard& d, const std::string& dir, int64_t max_groups);

// The colour of a sampled box: reward position t in [0, 1] within its step, red (0) through
// yellow to green (1); the page uses the same ramp. RGB bytes.
void reward_colour(double t, uint8_t rgb[3]);
// Ground-truth boxes: cyan.
inline constexpr uint8_t kGroundTruthRgb[3] = {0, 200, 255};

}  // namespace refract::dashboard
