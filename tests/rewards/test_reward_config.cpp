// reward_kwargs through the GRPO settings, the same path `refract grpo` takes: YAML and flags
// parsed by train::declare(Options&, GrpoConfig&), checked by train::validate, built by
// rewards::build_rewards.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <fstream>

#include "common/check.h"
#include "common/options.h"
#include "rewards/registry.h"
#include "train/config.h"

using namespace refract;
using nlohmann::json;

namespace {

rewards::CommonSettings common_of(const train::GrpoConfig& c) {
  rewards::CommonSettings s;
  s.coords = c.coordinate_format;
  s.format_pattern = c.format_pattern;
  return s;
}

double run(const rewards::RewardFn& fn, const rewards::RewardInput& in) {
  auto r = fn({in});
  EXPECT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].has_value());
  return r[0].value_or(NAN);
}

// What the trainer passes: the completion, its token ids and max_completion_length.
rewards::RewardInput completion_of_length(int64_t len, const train::GrpoConfig& c) {
  rewards::RewardInput in;
  in.completion = "x";
  in.completion_ids.assign(len, 1);
  in.max_completion_length = c.max_completion_length;
  return in;
}

// docs/rewards.md "Grounding": [0,0,10,10] vs [9,0,19,10] is 10/190 continuous, 0 for vlm_r1.
rewards::RewardInput vlm_r1_example() {
  rewards::RewardInput in;
  in.completion = "<answer>[0,0,10,10]</answer>";
  in.solution = json::array({9, 0, 19, 10});
  return in;
}

const char* kYaml =
    "model_name_or_path: /nonexistent/model\n"
    "max_completion_length: 100\n"
    "reward_funcs: [soft_overlong, iou]\n"
    "reward_kwargs:\n"
    "  soft_overlong: {soft_punish_cache: 20}\n"
    "  iou: {iou_convention: vlm_r1}\n";

}  // namespace

TEST(RewardKwargsConfig, YamlSettingsReachTheRewards) {
  train::GrpoConfig c;
  Options o;
  train::declare(o, c);
  o.load_yaml_string(kYaml, "grpo.yaml");
  EXPECT_NO_THROW(train::validate(c));
  auto fns = rewards::build_rewards(c.reward_funcs, c.reward_kwargs, common_of(c));
  ASSERT_EQ(fns.size(), 2u);
  // docs/rewards.md: soft_overlong (100, 20): L=90 -> -0.5 (L=80 -> 0, L=100 -> -1).
  EXPECT_DOUBLE_EQ(run(fns[0], completion_of_length(90, c)), -0.5);
  EXPECT_DOUBLE_EQ(run(fns[0], completion_of_length(80, c)), 0.0);
  EXPECT_DOUBLE_EQ(run(fns[0], completion_of_length(100, c)), -1.0);
  EXPECT_DOUBLE_EQ(run(fns[1], vlm_r1_example()), 0.0);
  // The effective settings record reward_kwargs and read back the same.
  train::GrpoConfig c2;
  Options o2;
  train::declare(o2, c2);
  o2.load_yaml_string(o.to_yaml(), "saved.yaml");
  EXPECT_EQ(c2.reward_kwargs, c.reward_kwargs);
}

TEST(RewardKwargsConfig, FlagsOverrideTheYamlPerSetting) {
  train::GrpoConfig c;
  Options o;
  train::declare(o, c);
  CLI::App app;
  o.add_to(app);
  const std::string path = ::testing::TempDir() + "/reward_kwargs.yaml";
  {
    std::ofstream f(path);
    f << kYaml;
  }
  std::vector<std::string> args = {"--config", path, "--reward_kwargs",
                                   "iou.iou_convention=continuous"};
  std::vector<std::string> rev(args.rbegin(), args.rend());
  app.parse(rev);
  o.parse();
  EXPECT_NO_THROW(train::validate(c));
  auto fns = rewards::build_rewards(c.reward_funcs, c.reward_kwargs, common_of(c));
  EXPECT_DOUBLE_EQ(run(fns[0], completion_of_length(90, c)), -0.5);  // from the YAML
  EXPECT_DOUBLE_EQ(run(fns[1], vlm_r1_example()), 10.0 / 190);      // the flag wins
}

TEST(RewardKwargsConfig, ValidateRejectsUnknownSettingBeforeAnythingLoads) {
  train::GrpoConfig c;
  Options o;
  train::declare(o, c);
  o.load_yaml_string(std::string(kYaml) + "reward_kwargs: {soft_overlong: {soft_punish_cach: 20}}\n",
                     "bad.yaml");
  try {
    train::validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("reward 'soft_overlong' has no setting 'soft_punish_cach'"), std::string::npos) << m;
    EXPECT_NE(m.find("max_completion_len, soft_punish_cache"), std::string::npos) << m;
  }
  o.load_yaml_string("reward_kwargs: {iou_squared: {}}\n", "bad.yaml");
  EXPECT_THROW(train::validate(c), Error);  // not one of reward_funcs
}
