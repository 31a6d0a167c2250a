// All rewards by name, as listed in `reward_funcs`, and the settings each one declares.
//
// Every built-in reward declares its settings (name, type, default, help) in one table in
// registry.cpp. Settings reach a reward from two sources:
//   - the user's `reward_kwargs` ({reward name: {setting: value}}): strictly checked, an
//     unknown setting or a wrongly typed value is an error naming the reward and the setting;
//   - the trainer's common settings (CommonSettings): each reward takes the ones it declares
//     and ignores the rest, so `format_pattern` does not have to be declared by `iou`.
// The per-reward value wins over the common one, which wins over the declared default.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace refract::rewards {

// One declared setting of a reward.
struct SettingInfo {
  std::string name;
  std::string type;                  // boolean | integer | number | string
  nlohmann::json default_value;
  std::string help;
  std::vector<std::string> choices;  // allowed values of a string setting (empty: any)
};

// A reward as `refract rewards --list` shows it.
struct RewardInfo {
  std::string name;                   // "external:<command>" for external rewards
  std::string description;
  std::vector<SettingInfo> settings;  // in declaration order, shared ones included
  std::string settings_of;            // a string setting naming another reward whose settings
                                      // are accepted too ("" if none; cosine's inner reward)
};

// Settings the trainer gives every reward (GRPO keys of the same meaning).
struct CommonSettings {
  std::string coords = "absolute_resized";  // GRPO coordinate_format
  std::string format_pattern;               // GRPO format_pattern; "" = each reward's default
};

// Builds the named reward with its settings (a JSON object; missing keys take the declared
// defaults). Every key must be a setting the reward declares. "external:<command>" starts
// <command> as a persistent JSON-lines child process (rewards/external_reward.h). Throws
// refract::Error for an unknown name (listing the known ones), an unknown setting (listing the
// reward's settings) or a value of the wrong type.
RewardFn make_reward(const std::string& name, const nlohmann::json& settings = nlohmann::json::object());

// The rewards of `reward_funcs`, in order: reward_kwargs[name] (strict, as make_reward) over
// `common` (only the settings a reward declares) over the declared defaults. Validates as
// validate_reward_kwargs first.
std::vector<RewardFn> build_rewards(const std::vector<std::string>& names,
                                    const nlohmann::json& reward_kwargs,
                                    const CommonSettings& common);

// Checks `reward_kwargs` against `names` (the reward_funcs) without building anything (no
// process started, no model needed): every name is a known reward, reward_kwargs is an object
// whose keys are among `names`, and each value is an object of settings its reward declares,
// of the declared type. Throws refract::Error starting with "reward_kwargs" (or naming the
// unknown reward).
void validate_reward_kwargs(const std::vector<std::string>& names,
                            const nlohmann::json& reward_kwargs);

// Every built-in reward in registry order, then "external:<command>".
const std::vector<RewardInfo>& reward_infos();

// Built-in names in registry order (without "external:").
std::vector<std::string> reward_names();

// One-line description of a built-in reward ("" if unknown).
std::string reward_description(const std::string& name);

}  // namespace refract::rewards
