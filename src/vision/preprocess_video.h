// Qwen2VLImageProcessor's video path (transformers 4.50, slow PIL path) on frames already
// decoded: each frame smart_resized and PIL-bicubic resized to the first frame's size, /255,
// CLIP-normalised; the frame count padded to a multiple of temporal_patch_size with copies of
// the last frame; patches flattened as for images, frame pairs forming the temporal patches:
// pixel_values_videos [grid_t*grid_h*grid_w, 1176], video_grid_thw (grid_t, grid_h, grid_w).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "vision/image.h"
#include "vision/preprocess.h"

namespace refract::vision {

struct PreprocessedVideo {
  std::vector<float> pixel_values;        // [rows, C*tp*p*p] row-major
  int64_t rows = 0;
  std::array<int64_t, 3> grid_thw{0, 0, 0};
  int64_t num_video_tokens() const { return grid_thw[0] * grid_thw[1] * grid_thw[2] / 4; }
};

// Frames of one video (at least one, all of one size). Errors name the frame that differs.
PreprocessedVideo preprocess_video(const std::vector<Image>& frames, const PreprocessConfig& cfg);

}  // namespace refract::vision
