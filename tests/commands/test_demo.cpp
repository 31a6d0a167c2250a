// `refract demo --from_scratch` end to end at toy size: tokenizer, random init, vision
// pre-training, SFT stage 1 on exact boxes, stage 2 on the annotated (box_noise) ones, GRPO,
// continued SFT, three evaluations, summary.json. It checks the wiring (which data and which
// checkpoint each stage gets, what the summary holds), not learning: that is the demo's own
// measurement (docs/training.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/atomic_file.h"
#include "commands/demo.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace refract;

namespace {

// The shipped yaml with its step budget cut to `steps` (and no warmup / a 1-step decay).
void write_short_config(const std::string& name, const std::string& dir, int steps) {
  std::string y = read_file(std::string(REFRACT_SOURCE_DIR) + "/configs/" + name);
  y = std::regex_replace(y, std::regex("\nmax_steps: [0-9]+"), "\nmax_steps: " + std::to_string(steps));
  y = std::regex_replace(y, std::regex("\nwarmup_steps: [0-9]+"), "\nwarmup_steps: 0");
  y = std::regex_replace(y, std::regex("\nnum_decay_steps: [0-9]+"), "\nnum_decay_steps: 1");
  std::ofstream(dir + "/" + name) << y;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<int> box_of(const nlohmann::json& sample) {
  const std::string a = sample["conversations"][1]["value"];
  std::smatch m;
  EXPECT_TRUE(std::regex_search(a, m, std::regex(R"(\[(\d+), (\d+), (\d+), (\d+)\])"))) << a;
  return {std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4])};
}

}  // namespace

TEST(Demo, FromScratchRunsEveryStageAndWritesTheSummary) {
  const refract::testing::TempDir tmp("demo");
  const std::string root = tmp.path();
  fs::create_directories(root + "/configs");
  write_short_config("demo_sft.yaml", root + "/configs", 2);
  write_short_config("demo_sft_annotated.yaml", root + "/configs", 2);
  write_short_config("demo_grpo.yaml", root + "/configs", 2);

  commands::DemoConfig c;
  c.output = root + "/out";
  c.seed = 3;
  c.from_scratch = true;
  c.configs_dir = root + "/configs";
  c.train_samples = 48;
  c.eval_samples = 4;
  c.vision_pretrain_steps = 2;
  c.rl_seconds = 600;  // the yaml's 2 steps end GRPO first
  c.box_noise = 4;
  c.eval_split = "validation";  // the tuning protocol: the held-out test splits are not even made
  commands::run_demo(c);

  const auto s = nlohmann::json::parse(read_file(c.output + "/summary.json"));
  EXPECT_EQ(s["seed"], 3);
  EXPECT_EQ(s["box_noise"], 4);
  EXPECT_EQ(s["eval_split"], "validation");
  EXPECT_TRUE(fs::exists(c.output + "/data/val_in/rec_in_domain.jsonl"));
  EXPECT_TRUE(fs::exists(c.output + "/data/val_ood/rec_ood_combo.jsonl"));
  EXPECT_FALSE(fs::exists(c.output + "/data/eval_in"));
  EXPECT_FALSE(fs::exists(c.output + "/data/eval_ood"));
  EXPECT_EQ(s["grpo_steps"], 2);
  // The evaluated start is stage 2's last checkpoint, trained from stage 1's.
  EXPECT_EQ(s["warm_start"], c.output + "/warm_start_annotated/checkpoint-2");
  EXPECT_TRUE(fs::exists(c.output + "/warm_start/checkpoint-2/model.safetensors"));
  for (const char* m : {"sft_start", "grpo", "sft_continued"})
    for (const char* d : {"in_domain", "out_of_domain"}) {
      EXPECT_EQ(s[m][d]["n"], 4) << m << " " << d;
      const double a = s[m][d]["acc50"];
      EXPECT_TRUE(a >= 0 && a <= 1) << m << " " << d;
    }
  EXPECT_GE(s["sft_continued_steps"].get<int64_t>(), 1);

  // Stage 1 trained on the same scenes with exact boxes, the rest on the annotated ones: same
  // images and questions, every box edge within box_noise of the exact one, most moved.
  const auto exact = read_jsonl(c.output + "/data/train_exact/rec_in_domain.jsonl");
  const auto annotated = read_jsonl(c.output + "/data/train/rec_in_domain.jsonl");
  ASSERT_EQ(exact.size(), 48u);
  ASSERT_EQ(annotated.size(), 48u);
  int moved = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    EXPECT_EQ(exact[i]["image"], annotated[i]["image"]);
    EXPECT_EQ(exact[i]["conversations"][0], annotated[i]["conversations"][0]);
    EXPECT_EQ(read_file(c.output + "/data/train_exact/" + exact[i]["image"].get<std::string>()),
              read_file(c.output + "/data/train/" + annotated[i]["image"].get<std::string>()));
    const auto a = box_of(exact[i]), b = box_of(annotated[i]);
    for (int e = 0; e < 4; ++e) EXPECT_LE(std::abs(a[e] - b[e]), 4) << i;
    moved += a != b ? 1 : 0;
  }
  EXPECT_GT(moved, 40);
}
