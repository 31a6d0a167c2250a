// Factories of the built-in rewards (internal; users go through rewards/registry.h).
// Each takes the reward's settings object COMPLETE and checked: registry.cpp fills in the
// declared defaults and checks the types before calling, so factories read without defaults.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "rewards/reward.h"

namespace refract::rewards {

// rewards_format.cpp
RewardFn make_format(const nlohmann::json& s);
RewardFn make_rec_format(const nlohmann::json& s);
// rewards_grounding.cpp
RewardFn make_iou(const nlohmann::json& s);
RewardFn make_iou_threshold(const nlohmann::json& s);
RewardFn make_iou_squared(const nlohmann::json& s);
RewardFn make_giou_plus_one(const nlohmann::json& s);
// rewards_detection.cpp
RewardFn make_det_iou(const nlohmann::json& s);
RewardFn make_det_confidence(const nlohmann::json& s);
RewardFn make_det_pr1(const nlohmann::json& s);
RewardFn make_weighted_sum(const nlohmann::json& s);
// rewards_map.cpp
RewardFn make_det_map(const nlohmann::json& s);
RewardFn make_od_ap(const nlohmann::json& s);
RewardFn make_od_ap50(const nlohmann::json& s);
RewardFn make_od_length(const nlohmann::json& s);
// rewards_counting.cpp
RewardFn make_count(const nlohmann::json& s);
RewardFn make_count_pr1(const nlohmann::json& s);
// rewards_text.cpp
RewardFn make_cls(const nlohmann::json& s);
RewardFn make_cls_exact(const nlohmann::json& s);
RewardFn make_ocr(const nlohmann::json& s);
RewardFn make_mcq(const nlohmann::json& s);
RewardFn make_yes_no(const nlohmann::json& s);
RewardFn make_all_match(const nlohmann::json& s);
RewardFn make_accuracy(const nlohmann::json& s);
// rewards_shaping.cpp
RewardFn make_cosine(const nlohmann::json& s);
RewardFn make_repetition(const nlohmann::json& s);
RewardFn make_soft_overlong(const nlohmann::json& s);

// Builds reward `name` from the settings it declares among a composite reward's complete
// settings (cosine's inner reward); the other keys are ignored. registry.cpp.
RewardFn make_inner_reward(const std::string& name, const nlohmann::json& outer_settings);

// Single-sample scorers reused by `accuracy`'s dispatch and by `refract score`.
double default_accuracy_score(const std::string& completion, const std::string& solution);
double mcq_score(const std::string& completion, const std::string& solution);
double yes_no_score(const std::string& completion, const std::string& solution);
double all_match_score(const std::string& completion, const std::string& solution);

}  // namespace refract::rewards
