// Declared reward settings: strict checking of reward_kwargs, the trainer's common settings,
// and values reaching the reward code (docs/rewards.md "Per-reward settings").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/check.h"
#include "rewards/registry.h"

using namespace refract::rewards;
using nlohmann::json;

namespace {

RewardInput input(const std::string& completion, json solution) {
  RewardInput in;
  in.completion = completion;
  in.solution = std::move(solution);
  return in;
}

double run(const RewardFn& fn, const RewardInput& in) {
  auto r = fn({in});
  EXPECT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].has_value());
  return r[0].value_or(NAN);
}

// The error message of `f`, or "" when it does not throw refract::Error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const refract::Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// docs/rewards.md "Grounding": [0,0,10,10] vs [9,0,19,10] is 10/190 continuous, 0 for vlm_r1.
RewardInput vlm_r1_example() {
  return input("<answer>[0,0,10,10]</answer>", json::array({9, 0, 19, 10}));
}

// docs/rewards.md "Shaping": soft_overlong (100, 20) at L = 90 is -0.5.
RewardInput length_90_of_100() {
  RewardInput in = input("x", "");
  in.max_completion_length = 100;
  in.completion_ids.assign(90, 1);
  return in;
}

}  // namespace

TEST(RewardSettings, UnknownSettingNamesRewardSettingAndValidOnes) {
  const std::string m = error_of([] { make_reward("iou", {{"iou_convension", "vlm_r1"}}); });
  EXPECT_TRUE(has(m, "reward 'iou'")) << m;
  EXPECT_TRUE(has(m, "'iou_convension'")) << m;
  EXPECT_TRUE(has(m, "coords, box_pattern, iou_convention, require_answer_tag")) << m;
  const std::string none = error_of([] { make_reward("cls", {{"lowercase", true}}); });
  EXPECT_TRUE(has(none, "reward 'cls' has no setting 'lowercase'; it has no settings")) << none;
}

TEST(RewardSettings, WrongTypeNamesSettingAndExpectedType) {
  std::string m = error_of([] { make_reward("soft_overlong", {{"soft_punish_cache", "20"}}); });
  EXPECT_TRUE(has(m, "reward 'soft_overlong': setting 'soft_punish_cache' must be an integer, got \"20\""))
      << m;
  m = error_of([] { make_reward("soft_overlong", {{"soft_punish_cache", 20.5}}); });
  EXPECT_TRUE(has(m, "soft_punish_cache")) << m;
  m = error_of([] { make_reward("det_map", {{"use_confidence", 1}}); });
  EXPECT_TRUE(has(m, "'use_confidence' must be a boolean, got 1")) << m;
  m = error_of([] { make_reward("iou", {{"iou_convention", "pixel"}}); });
  EXPECT_TRUE(has(m, "'iou_convention' is 'pixel', not one of: continuous, vlm_r1")) << m;
  // An integral number written as 20.0 is an integer.
  EXPECT_DOUBLE_EQ(run(make_reward("soft_overlong", {{"soft_punish_cache", 20.0}}), length_90_of_100()), -0.5);
}

TEST(RewardSettings, ExternalDeclaresTimeout) {
  // Checked before the process starts.
  const std::string m = error_of([] { make_reward("external:cat", {{"timeout", 5}}); });
  EXPECT_TRUE(has(m, "'timeout'") && has(m, "timeout_seconds")) << m;
  EXPECT_NO_THROW(validate_reward_kwargs({"external:python3 r.py"},
                                         {{"external:python3 r.py", {{"timeout_seconds", 5}}}}));
}

TEST(RewardSettings, CompositeRewardsAcceptTheirInnerRewardsSettings) {
  // accuracy dispatches rec samples to iou, so it takes iou's settings.
  RewardInput in = vlm_r1_example();
  in.reward_method = "iou";
  const json abs = {{"coords", "absolute"}};
  EXPECT_DOUBLE_EQ(run(make_reward("accuracy", abs), in), 10.0 / 190);
  EXPECT_DOUBLE_EQ(run(make_reward("accuracy", {{"coords", "absolute"}, {"iou_convention", "vlm_r1"}}), in), 0.0);
  // cosine takes the settings of the reward its cosine_accuracy_reward names.
  EXPECT_NO_THROW(make_reward("cosine", {{"cosine_accuracy_reward", "iou"}, {"iou_convention", "vlm_r1"}}));
  EXPECT_NO_THROW(make_reward("cosine", {{"reward_method", "mcq"}}));  // inner: accuracy
  std::string m = error_of(
      [] { make_reward("cosine", {{"cosine_accuracy_reward", "all_match"}, {"iou_convention", "vlm_r1"}}); });
  EXPECT_TRUE(has(m, "'iou_convention'") && has(m, "cosine_accuracy_reward")) << m;
  m = error_of([] { make_reward("cosine", {{"cosine_accuracy_reward", "cosine"}}); });
  EXPECT_TRUE(has(m, "cosine_accuracy_reward")) << m;
  m = error_of([] { make_reward("cosine", {{"cosine_accuracy_reward", "acuracy"}}); });
  EXPECT_TRUE(has(m, "unknown reward 'acuracy'")) << m;
}

TEST(RewardKwargs, ValidateNamesTheKeyAndTheRewardFuncs) {
  const std::vector<std::string> funcs = {"iou", "format"};
  std::string m = error_of([&] { validate_reward_kwargs(funcs, {{"iou_squard", json::object()}}); });
  EXPECT_TRUE(has(m, "reward_kwargs: 'iou_squard' is not one of reward_funcs [iou, format]")) << m;
  m = error_of([&] { validate_reward_kwargs(funcs, {{"iou", {{"treshold", 0.7}}}}); });
  EXPECT_TRUE(has(m, "reward_kwargs: reward 'iou' has no setting 'treshold'")) << m;
  m = error_of([&] { validate_reward_kwargs(funcs, {{"iou", 0.7}}); });
  EXPECT_TRUE(has(m, "reward_kwargs: reward 'iou'") && has(m, "mapping")) << m;
  m = error_of([&] { validate_reward_kwargs(funcs, json::array({1})); });
  EXPECT_TRUE(has(m, "reward_kwargs must be a mapping")) << m;
  m = error_of([] { validate_reward_kwargs({"iou", "fromat"}, json::object()); });
  EXPECT_TRUE(has(m, "unknown reward 'fromat'")) << m;
  EXPECT_NO_THROW(validate_reward_kwargs(funcs, nullptr));
  EXPECT_NO_THROW(validate_reward_kwargs(funcs, {{"iou", nullptr}}));
  EXPECT_NO_THROW(validate_reward_kwargs(funcs, {{"iou", {{"iou_convention", "vlm_r1"}}},
                                                 {"format", {{"format_pattern", "<answer>.*</answer>"}}}}));
}

TEST(RewardKwargs, BuildRewardsAppliesKwargsInOrder) {
  const json kwargs = {{"soft_overlong", {{"soft_punish_cache", 20}}},
                       {"iou", {{"iou_convention", "vlm_r1"}}}};
  CommonSettings common;
  common.coords = "absolute";
  auto fns = build_rewards({"iou", "soft_overlong", "format"}, kwargs, common);
  ASSERT_EQ(fns.size(), 3u);
  EXPECT_DOUBLE_EQ(run(fns[0], vlm_r1_example()), 0.0);
  EXPECT_DOUBLE_EQ(run(fns[1], length_90_of_100()), -0.5);
  // Without reward_kwargs the defaults hold: continuous IoU, no soft punishment.
  auto plain = build_rewards({"iou", "soft_overlong"}, json::object(), common);
  EXPECT_DOUBLE_EQ(run(plain[0], vlm_r1_example()), 10.0 / 190);
  EXPECT_DOUBLE_EQ(run(plain[1], length_90_of_100()), 0.0);
}

TEST(RewardKwargs, CommonSettingsGoWhereDeclaredAndKwargsWin) {
  // A 1000x500 image resized to 500x250: absolute_resized maps [50,25,100,50] -> [100,50,200,100].
  RewardInput in = input("<answer>[50, 25, 100, 50]</answer>", "[100, 50, 200, 100]");
  in.images.push_back({1000, 500, 500, 250, "x.png"});
  CommonSettings common;  // coords absolute_resized; format does not declare coords: no error
  auto fns = build_rewards({"iou", "format"}, json::object(), common);
  EXPECT_DOUBLE_EQ(run(fns[0], in), 1.0);
  // The per-reward value wins over the common one.
  fns = build_rewards({"iou"}, {{"iou", {{"coords", "absolute"}}}}, common);
  EXPECT_DOUBLE_EQ(run(fns[0], in), 0.0);
  // format_pattern reaches both format rewards; reward_kwargs can give each its own.
  common.format_pattern = "<answer>.*</answer>";
  const RewardInput answer_only = input("<answer>x</answer>", "");
  fns = build_rewards({"format", "rec_format"}, json::object(), common);
  EXPECT_DOUBLE_EQ(run(fns[0], answer_only), 1.0);
  EXPECT_DOUBLE_EQ(run(fns[1], answer_only), 1.0);
  fns = build_rewards({"format"}, {{"format", {{"format_pattern", "<think>.*</think>"}}}}, common);
  EXPECT_DOUBLE_EQ(run(fns[0], answer_only), 0.0);
  // A bad common value is still an error naming the setting.
  common.coords = "pixels";
  const std::string m = error_of([&] { build_rewards({"iou"}, json::object(), common); });
  EXPECT_TRUE(has(m, "'coords' is 'pixels'")) << m;
}

TEST(RewardKwargs, EveryRewardDeclaresTypedDocumentedSettings) {
  const auto& infos = reward_infos();
  ASSERT_EQ(infos.size(), reward_names().size() + 1);
  EXPECT_EQ(infos.back().name, "external:<command>");
  for (const auto& r : infos) {
    EXPECT_FALSE(r.description.empty()) << r.name;
    std::set<std::string> seen;
    json defaults = json::object();
    for (const auto& s : r.settings) {
      EXPECT_TRUE(seen.insert(s.name).second) << r.name << "." << s.name << " listed twice";
      EXPECT_FALSE(s.help.empty()) << r.name << "." << s.name;
      const bool typed = (s.type == "boolean" && s.default_value.is_boolean()) ||
                         (s.type == "integer" && s.default_value.is_number_integer()) ||
                         (s.type == "number" && s.default_value.is_number()) ||
                         (s.type == "string" && s.default_value.is_string());
      EXPECT_TRUE(typed) << r.name << "." << s.name << ": " << s.type << " " << s.default_value;
      defaults[s.name] = s.default_value;
    }
    // Every declared default is itself a valid setting.
    if (r.name != "external:<command>") EXPECT_NO_THROW(make_reward(r.name, defaults)) << r.name;
  }
  auto iou = std::find_if(infos.begin(), infos.end(), [](const auto& r) { return r.name == "iou"; });
  ASSERT_NE(iou, infos.end());
  auto conv = std::find_if(iou->settings.begin(), iou->settings.end(),
                           [](const auto& s) { return s.name == "iou_convention"; });
  ASSERT_NE(conv, iou->settings.end());
  EXPECT_EQ(conv->default_value, "continuous");
  EXPECT_EQ(conv->choices, (std::vector<std::string>{"continuous", "vlm_r1"}));
}
