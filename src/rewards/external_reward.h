// Custom rewards in any language: a persistent child process speaking JSON lines.
//
// The command is started once with `sh -c <command>`. For every batch refract writes ONE line
//   {"prompts": [..], "completions": [..], "completion_ids": [[..]], "solutions": [..],
//    "reward_methods": [..], "extra": [{..}], "images": [[{"path", "width", "height"}]]}
// and reads ONE line back: {"rewards": [float | null, ...]} with one entry per completion.
// A timeout (setting `timeout_seconds`, default 60), a crash, a reply that is not JSON or has
// the wrong length is a refract::Error naming the command and what went wrong.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "rewards/reward.h"

namespace refract::rewards {

RewardFn make_external_reward(const std::string& command, const nlohmann::json& settings);

// The request line for a batch (exposed for tests and documentation).
nlohmann::json external_request(const std::vector<RewardInput>& batch);

}  // namespace refract::rewards
