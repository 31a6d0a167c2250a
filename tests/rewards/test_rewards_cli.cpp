// End to end through the `refract` binary: reward_kwargs checked by `refract grpo` before any
// model is opened, and `refract rewards --list`.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliResult {
  int status;
  std::string out;  // stdout and stderr
};

CliResult run(const std::string& args) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WEXITSTATUS(st), out};
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST(RewardsCli, GrpoRejectsUnknownRewardSettingBeforeLoading) {
  const refract::testing::TempDir tmp("rewards_cli");
  const fs::path d = tmp.path();
  const fs::path cfg = d / "bad.yaml";
  std::ofstream(cfg) << "model_name_or_path: " << (d / "no_such_model").string() << "\n"
                     << "output_dir: " << (d / "out").string() << "\n"
                     << "reward_funcs: [soft_overlong, iou]\n"
                     << "reward_kwargs:\n"
                     << "  soft_overlong: {soft_punish_cach: 20}\n";
  CliResult r = run("grpo --config " + cfg.string());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "reward_kwargs: reward 'soft_overlong' has no setting 'soft_punish_cach'"))
      << r.out;
  EXPECT_TRUE(has(r.out, "soft_punish_cache")) << r.out;  // the valid ones are listed
  EXPECT_FALSE(has(r.out, "no_such_model")) << r.out;      // failed before opening the model
  // A flag merges into the YAML's reward_kwargs: its bad setting is still there.
  r = run("grpo --config " + cfg.string() + " --reward_kwargs iou.iou_convention=vlm_r1");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "'soft_punish_cach'")) << r.out;
}

TEST(RewardsCli, GrpoRejectsBadFlagValueOfAKnownSetting) {
  const refract::testing::TempDir tmp("rewards_cli");
  const fs::path d = tmp.path();
  const fs::path cfg = d / "ok.yaml";
  std::ofstream(cfg) << "model_name_or_path: " << (d / "no_such_model").string() << "\n"
                     << "output_dir: " << (d / "out").string() << "\n"
                     << "reward_funcs: [iou]\n";
  const CliResult r = run("grpo --config " + cfg.string() + " --reward_kwargs iou.iou_convention=pixels");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "setting 'iou_convention' is 'pixels', not one of: continuous, vlm_r1"))
      << r.out;
}

TEST(RewardsCli, GrpoHelpPointsAtTheList) {
  const CliResult r = run("grpo --help");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "--reward_kwargs")) << r.out;
  EXPECT_TRUE(has(r.out, "refract rewards --list")) << r.out;
}

TEST(RewardsCli, ListShowsEverySettingWithTypeAndDefault) {
  CliResult r = run("rewards --list");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "iou_convention (string, default \"continuous\") {continuous|vlm_r1}"))
      << r.out;
  EXPECT_TRUE(has(r.out, "soft_punish_cache (integer, default 0)")) << r.out;
  EXPECT_TRUE(has(r.out, "external:<command>")) << r.out;
  EXPECT_TRUE(has(r.out, "timeout_seconds")) << r.out;

  r = run("rewards --list --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const json list = json::parse(r.out);
  ASSERT_TRUE(list.is_array());
  bool found = false;
  for (const auto& reward : list) {
    if (reward["name"] != "iou") continue;
    for (const auto& s : reward["settings"])
      if (s["name"] == "iou_convention") {
        found = true;
        EXPECT_EQ(s["type"], "string");
        EXPECT_EQ(s["default"], "continuous");
        EXPECT_EQ(s["choices"], json::array({"continuous", "vlm_r1"}));
      }
  }
  EXPECT_TRUE(found) << r.out;

  r = run("rewards --list soft_overlong");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "soft_overlong: ")) << r.out;
  EXPECT_FALSE(has(r.out, "iou_convention")) << r.out;
  r = run("rewards --list sofft_overlong");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "unknown reward 'sofft_overlong'")) << r.out;
}
