// All rewards by name, as listed in `reward_funcs`.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace refract::rewards {

// Builds the named reward with its settings (a JSON object; missing keys take defaults, see
// docs/rewards.md). "external:<command>" starts <command> as a persistent JSON-lines child
// process (rewards/external_reward.h). Throws refract::Error for an unknown name, listing
// the known ones.
RewardFn make_reward(const std::string& name, const nlohmann::json& settings = nlohmann::json::object());

// Built-in names in registry order (without "external:").
std::vector<std::string> reward_names();

// One-line description of a built-in reward ("" if unknown).
std::string reward_description(const std::string& name);

}  // namespace refract::rewards
