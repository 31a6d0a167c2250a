// `refract rewards --list`: every reward usable in reward_funcs, with the settings reward_kwargs
// can give it (type, default, help), from the declarations in rewards/registry.cpp.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/check.h"
#include "rewards/registry.h"

namespace refract::cli {
namespace {

struct RewardsCommand {
  bool list = false;
  bool json = false;
  std::vector<std::string> names;
};

constexpr const char* kFooter = R"(
Settings reach a reward through the GRPO key reward_kwargs, keyed by the names in reward_funcs:
  YAML:  reward_kwargs: {soft_overlong: {soft_punish_cache: 20}, iou: {iou_convention: vlm_r1}}
  flags: --reward_kwargs soft_overlong.soft_punish_cache=20 --reward_kwargs iou.iou_convention=vlm_r1
         --reward_kwargs '{"iou": {"iou_convention": "vlm_r1"}}'
An unknown setting or a value of the wrong type is an error before anything is loaded.
coords and format_pattern default to the GRPO keys coordinate_format and format_pattern.)";

nlohmann::json to_json(const rewards::RewardInfo& r) {
  nlohmann::json settings = nlohmann::json::array();
  for (const auto& s : r.settings) {
    nlohmann::json j = {{"name", s.name}, {"type", s.type}, {"default", s.default_value},
                        {"help", s.help}};
    if (!s.choices.empty()) j["choices"] = s.choices;
    settings.push_back(std::move(j));
  }
  nlohmann::json j = {{"name", r.name}, {"description", r.description}, {"settings", settings}};
  if (!r.settings_of.empty()) j["settings_of"] = r.settings_of;
  return j;
}

void print_text(const rewards::RewardInfo& r) {
  std::printf("%s: %s\n", r.name.c_str(), r.description.c_str());
  for (const auto& s : r.settings) {
    std::string line = "  " + s.name + " (" + s.type + ", default " + s.default_value.dump() + ")";
    if (!s.choices.empty()) {
      line += " {";
      for (size_t i = 0; i < s.choices.size(); ++i) line += (i ? "|" : "") + s.choices[i];
      line += "}";
    }
    std::printf("%s\n      %s\n", line.c_str(), s.help.c_str());
  }
  if (!r.settings_of.empty())
    std::printf("  + the settings of the reward named by %s\n", r.settings_of.c_str());
}

}  // namespace

void add_rewards_command(CLI::App& app) {
  auto state = std::make_shared<RewardsCommand>();
  auto* cmd = app.add_subcommand(
      "rewards", "List the rewards for reward_funcs and the settings reward_kwargs can give them");
  cmd->footer(kFooter);
  cmd->add_flag("--list", state->list,
                "list every reward (or the NAMES given) with its settings: type, default, help "
                "(the default action)");
  cmd->add_flag("--json", state->json, "print the list as JSON");
  cmd->add_option("names", state->names, "only these rewards (external:<command> for external)");
  cmd->callback([state] {
    std::vector<rewards::RewardInfo> shown;
    const auto& all = rewards::reward_infos();
    if (state->names.empty()) shown = all;
    for (const auto& n : state->names) {
      const std::string key = n.rfind("external:", 0) == 0 ? "external:<command>" : n;
      auto it = std::find_if(all.begin(), all.end(), [&](const auto& r) { return r.name == key; });
      if (it == all.end()) {
        std::string known;
        for (const auto& r : all) known += (known.empty() ? "" : ", ") + r.name;
        REFRACT_FAIL() << "unknown reward '" << n << "'; known: " << known;
      }
      shown.push_back(*it);
    }
    if (state->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : shown) out.push_back(to_json(r));
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    for (size_t i = 0; i < shown.size(); ++i) {
      if (i) std::printf("\n");
      print_text(shown[i]);
    }
  });
}

}  // namespace refract::cli
