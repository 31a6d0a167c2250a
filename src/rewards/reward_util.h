// Helpers shared by the built-in rewards (internal to src/rewards).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rewards/answer_parser.h"
#include "rewards/coords.h"
#include "rewards/reward.h"

namespace refract::rewards {

// Reads one setting of a reward's complete settings (registry.cpp has filled in the declared
// defaults and checked the types). A missing key means the reward reads a setting it does
// not declare in the registry table: an error naming the key.
double setting_double(const nlohmann::json& s, const char* key);
bool setting_bool(const nlohmann::json& s, const char* key);
std::string setting_string(const nlohmann::json& s, const char* key);

// Lifts a per-completion scorer to a batch RewardFn.
using SampleFn = std::function<std::optional<double>(const RewardInput&)>;
RewardFn per_sample(SampleFn fn);

// The ground truth as text: a string as is, anything else dumped as JSON. A leading/trailing
// <answer> wrapper is removed (VLM-R1 stores solutions as "<answer> ... </answer>").
std::string solution_text(const nlohmann::json& sol);

// One ground-truth box (original-image pixels): [x1,y1,x2,y2], {"bbox_2d": ..}, or a string
// holding either.
std::optional<Box> solution_box(const nlohmann::json& sol);

// Ground-truth objects: a JSON list (or a string / ```json block holding one) of objects or
// boxes.
std::vector<DetItem> solution_items(const nlohmann::json& sol);

// The first image's size (empty ImageSize when the sample has none).
ImageSize first_image(const RewardInput& in);

// The answer part of a completion, as the grounding / detection rewards read it: the
// <answer> body if present; else the whole completion unless `require_answer_tag`.
std::optional<std::string> answer_part(const RewardInput& in, bool require_answer_tag);

}  // namespace refract::rewards
