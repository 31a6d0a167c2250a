// Verifiable rewards: plain functions from a batch of completions to scores.
// Every reward is one named entry in the registry (rewards/registry.h), usable in
// `reward_funcs`. A reward returns a value or nullopt ("not applicable"; TRL's None).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace refract::rewards {

// Size of one image as the model saw it; used to map predicted coordinates to the original.
struct ImageSize {
  int64_t width = 0;          // original image
  int64_t height = 0;
  int64_t resized_width = 0;  // grid_w * 14 (smart_resize output)
  int64_t resized_height = 0;
  std::string path;
};

struct RewardInput {
  std::string prompt;                  // rendered prompt text
  std::string completion;              // decoded completion
  std::vector<int32_t> completion_ids;
  nlohmann::json solution;             // ground truth (original-image pixels for boxes)
  nlohmann::json extra;                // every extra dataset column
  std::string reward_method;           // per-sample accu_reward_method, "" if none
  std::vector<ImageSize> images;
  int64_t max_completion_length = 0;   // for length-shaped rewards
};

using RewardFn = std::function<std::vector<std::optional<double>>(const std::vector<RewardInput>&)>;

}  // namespace refract::rewards
