#include "model/vision_windows.h"

#include <algorithm>

#include "common/check.h"

namespace refract::model {

VisionWindows get_window_index(const std::vector<GridTHW>& grid, const Qwen2_5_VLVisionConfig& c) {
  VisionWindows w;
  const int64_t merge = c.spatial_merge_size;
  const int64_t unit = merge * merge;  // patches per merged unit
  // Window side in merged units (112 / 2 / 14 = 4).
  const int64_t vws = c.window_size / merge / c.patch_size;
  w.cu_window_seqlens.push_back(0);
  w.cu_seqlens.push_back(0);
  int64_t base = 0;  // merged units before this item
  for (const auto& g : grid) {
    const int64_t t = g[0], gh = g[1], gw = g[2];
    REFRACT_CHECK(t > 0 && gh > 0 && gw > 0 && gh % merge == 0 && gw % merge == 0)
        << "image_grid_thw row (" << t << ", " << gh << ", " << gw
        << ") must be positive with h and w multiples of spatial_merge_size " << merge;
    const int64_t H = gh / merge, W = gw / merge;
    // ref: get_window_index pads with vws - H % vws, so an exact multiple gets a whole empty
    // window row/column; empty windows add nothing below, so they are simply not enumerated.
    const int64_t win_rows = (H + vws - 1) / vws, win_cols = (W + vws - 1) / vws;
    for (int64_t f = 0; f < t; ++f) {
      for (int64_t wy = 0; wy < win_rows; ++wy) {
        for (int64_t wx = 0; wx < win_cols; ++wx) {
          int64_t n = 0;
          for (int64_t y = wy * vws; y < std::min(wy * vws + vws, H); ++y) {
            for (int64_t x = wx * vws; x < std::min(wx * vws + vws, W); ++x) {
              w.window_index.push_back(base + f * H * W + y * W + x);
              ++n;
            }
          }
          // ref: empty windows repeat the previous boundary; unique_consecutive drops them.
          if (n > 0) w.cu_window_seqlens.push_back(w.cu_window_seqlens.back() + n * unit);
        }
      }
      w.cu_seqlens.push_back(w.cu_seqlens.back() + gh * gw);
    }
    base += t * H * W;
  }
  return w;
}

}  // namespace refract::model
