// Window partition of the vision tower (no torch): which merged units attend together.
// ref: modeling_qwen2_5_vl.py@4.50 Qwen2_5_VisionTransformerPretrainedModel.get_window_index
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace refract::model {

using GridTHW = std::array<int64_t, 3>;  // (t, h, w) in patches, one per image / video

struct VisionWindows {
  // Permutation of merged units (groups of spatial_merge^2 consecutive patch rows): unit
  // window_index[k] goes to slot k. Windows are enumerated per item, per frame, row-major.
  std::vector<int64_t> window_index;
  // Window boundaries in patches, starting at 0; empty windows are skipped (HF's
  // unique_consecutive removes their repeated entries).
  std::vector<int64_t> cu_window_seqlens;
  // Full-attention boundaries: one segment per frame of every item ([0, cumsum(h*w)]).
  std::vector<int64_t> cu_seqlens;
};

VisionWindows get_window_index(const std::vector<GridTHW>& grid, const Qwen2_5_VLVisionConfig& c);

}  // namespace refract::model
