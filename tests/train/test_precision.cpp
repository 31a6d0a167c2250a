// Memory and precision settings of the trainers, from the command line:
// - gradient_checkpointing trains exactly as without it (same losses and rewards; the gradient
//   identity itself is tested in tests/model/test_recompute.cpp and test_logprobs.cpp);
// - bf16 (autocast with fp32 master weights) tracks the fp32 run within a stated tolerance,
//   actually computes in bf16 (the losses are not identical), saves fp32 checkpoints, and
//   resumes exactly.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "common/atomic_file.h"
#include "io/torch_tensors.h"
#include "train_world.h"

namespace fs = std::filesystem;
using namespace refract;
using namespace refract::train;
using refract::testing::base;
using refract::testing::comparable;
using refract::testing::world;

namespace {

// Runs `refract <cmd>` on the tiny world; returns metrics.jsonl's log lines.
nlohmann::json run_cli(const std::string& cmd, const std::string& name, const std::string& extra) {
  const auto& w = world();
  const std::string out = w.root + "/" + name;
  const std::string line = std::string(REFRACT_BINARY) + " " + cmd + " --model " + w.model + " --data_file_paths " +
                           w.jsonl + " --image_folders " + w.images +
                           " --question_template none --report_to none --threads 1 --logging_steps 1" +
                           refract::testing::device_flag() + " --lr_scheduler_type constant --seed 5 --output_dir " + out + " " + extra + " > " + out +
                           ".log 2>&1";
  EXPECT_EQ(std::system(line.c_str()), 0) << read_file(out + ".log");
  nlohmann::json lines = nlohmann::json::array();
  std::istringstream in(read_file(out + "/metrics.jsonl"));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) {
      auto j = nlohmann::json::parse(l);
      if (j.contains("loss")) lines.push_back(j);
    }
  return lines;
}

double metric(const nlohmann::json& line, const std::string& key) { return line.at(key).get<double>(); }

}  // namespace

TEST(GradientCheckpointing, SftFromTheCommandLineTrainsAsWithout) {
  const std::string args = "--max_steps 3 --per_device_train_batch_size 4 --learning_rate 1e-3";
  auto plain = run_cli("sft", "ckpt_sft_plain", args);
  auto ckpt = run_cli("sft", "ckpt_sft_on", args + " --gradient_checkpointing");
  ASSERT_EQ(plain.size(), 3u);
  ASSERT_EQ(ckpt.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(metric(plain[i], "loss"), metric(ckpt[i], "loss"), 1e-5) << i;
    EXPECT_NEAR(metric(plain[i], "grad_norm"), metric(ckpt[i], "grad_norm"), 1e-5) << i;
  }
}

TEST(GradientCheckpointing, GrpoFromTheCommandLineTrainsAsWithout) {
  // A reward that varies within the groups (ocr: edit distance of the random completions to the
  // solution), so the steps carry a real gradient. With a constant reward only the KL term's
  // rounding noise would be left, which AdamW blows up to full-size steps: a comparison of noise.
  const std::string args =
      "--max_steps 3 --num_generations 4 --per_device_train_batch_size 4 --max_completion_length 12"
      " --reward_funcs ocr --beta 0.04 --learning_rate 1e-3";
  auto plain = run_cli("grpo", "ckpt_grpo_plain", args);
  auto ckpt = run_cli("grpo", "ckpt_grpo_on", args + " --gradient_checkpointing");
  ASSERT_EQ(plain.size(), 3u);
  ASSERT_EQ(ckpt.size(), 3u);
  double largest_grad_norm = 0;
  for (size_t i = 0; i < 3; ++i) {
    largest_grad_norm = std::max(largest_grad_norm, metric(plain[i], "grad_norm"));
    for (const char* k : {"loss", "kl", "reward", "grad_norm", "completions/mean_length"})
      EXPECT_NEAR(metric(plain[i], k), metric(ckpt[i], k), 1e-5) << k << " at step " << i + 1;
  }
  EXPECT_GT(largest_grad_norm, 1e-3) << "no step had a gradient: the comparison would be empty";
}

// Tolerance: bf16 keeps 8 bits of mantissa (~0.4 % per rounding); over 20 steps of SFT on the
// tiny model the loss stays within 2 % + 0.02 of the fp32 run.
TEST(MixedPrecision, Bf16SftTracksFp32AndResumesExactly) {
  const std::string args = "--max_steps 20 --per_device_train_batch_size 4 --learning_rate 1e-3 --save_steps 10";
  auto fp32 = run_cli("sft", "bf16_sft_fp32", args);
  auto bf16 = run_cli("sft", "bf16_sft_bf16", args + " --bf16");
  ASSERT_EQ(fp32.size(), 20u);
  ASSERT_EQ(bf16.size(), 20u);
  double max_diff = 0;
  for (size_t i = 0; i < 20; ++i) {
    const double a = metric(fp32[i], "loss"), b = metric(bf16[i], "loss");
    ASSERT_TRUE(std::isfinite(b));
    max_diff = std::max(max_diff, std::abs(a - b));
    EXPECT_NEAR(a, b, 0.02 + 0.02 * std::abs(a)) << "step " << i + 1;
  }
  EXPECT_GT(max_diff, 1e-6) << "bf16 gave the fp32 losses exactly: autocast did not take effect";
  EXPECT_LT(metric(bf16[19], "loss"), metric(bf16[0], "loss"));  // it learns
  // Checkpoints hold the fp32 master weights.
  const std::string dir = world().root + "/bf16_sft_bf16";
  for (const auto& [name, t] : io::load_tensors(dir + "/checkpoint-20/model.safetensors"))
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
  // 10 + resume + 10 = 20, bit for bit (the AdamW state is fp32 and round-trips).
  const std::string resumed = world().root + "/bf16_sft_resumed";
  fs::remove_all(resumed);
  fs::create_directories(resumed);
  fs::copy(dir + "/checkpoint-10", resumed + "/checkpoint-10", fs::copy_options::recursive);
  run_cli("sft", "bf16_sft_resumed", args + " --bf16 --resume_from_checkpoint true");
  EXPECT_EQ(read_file(dir + "/checkpoint-20/model.safetensors"), read_file(resumed + "/checkpoint-20/model.safetensors"));
}

// GRPO in bf16: the rollouts and log-probs differ from fp32 only by rounding, so with the same
// seeds the first step samples the same completions on this tiny model and its loss, KL and
// reward match within the bf16 tolerance; 20 steps stay finite.
TEST(MixedPrecision, Bf16GrpoTracksFp32) {
  const std::string args =
      "--max_steps 20 --num_generations 4 --per_device_train_batch_size 4 --max_completion_length 12"
      " --reward_funcs format --beta 0.04 --learning_rate 1e-3 --save_steps 20";
  auto fp32 = run_cli("grpo", "bf16_grpo_fp32", args);
  auto bf16 = run_cli("grpo", "bf16_grpo_bf16", args + " --bf16");
  ASSERT_EQ(fp32.size(), 20u);
  ASSERT_EQ(bf16.size(), 20u);
  for (const auto& l : bf16)
    for (const char* k : {"loss", "kl", "reward", "entropy"}) ASSERT_TRUE(std::isfinite(metric(l, k))) << k;
  EXPECT_NEAR(metric(fp32[0], "completions/mean_length"), metric(bf16[0], "completions/mean_length"), 1e-9);
  EXPECT_NEAR(metric(fp32[0], "entropy"), metric(bf16[0], "entropy"), 0.02 * std::abs(metric(fp32[0], "entropy")) + 0.02);
  EXPECT_NE(metric(fp32[0], "entropy"), metric(bf16[0], "entropy"));
}
