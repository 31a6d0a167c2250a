// Shared reading of detection answers for the detection rewards (internal).
#pragma once
#include <vector>

#include "rewards/reward_util.h"

namespace refract::rewards {

struct DetSample {
  std::vector<DetItem> pred;  // mapped to original-image pixels
  std::vector<DetItem> gt;
  size_t entries = 0;         // list entries the model wrote (valid or not)
  bool parsed = false;        // a list / box was found in the answer at all
};

// Reads predictions (answer part, coords mapped) and the ground truth of one sample.
DetSample read_det_sample(const RewardInput& in, CoordMode coords, bool require_answer_tag);

// Settings common to detection rewards: coords, require_answer_tag.
CoordMode det_coords(const nlohmann::json& s);

}  // namespace refract::rewards
