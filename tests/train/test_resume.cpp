// End to end on a tiny random model: SFT and GRPO run, and N steps + resume + N steps equals
// 2N steps (identical weights and metrics on CPU).
#include <gtest/gtest.h>
#include <unistd.h>

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


TEST(Resume, SftTwoPlusTwoEqualsFour) {
  const std::string a = world().root + "/sft_a", b = world().root + "/sft_b";
  SftConfig ca;
  base(ca, a);
  ca.per_device_train_batch_size = 4;
  ca.max_steps = 4;
  RunSummary ra = run_sft(ca);
  SftConfig cb = ca;
  cb.output_dir = b;
  cb.max_steps = 2;
  run_sft(cb);
  cb.max_steps = 4;
  cb.resume_from_checkpoint = "true";
  RunSummary rb = run_sft(cb);
  EXPECT_EQ(rb.first_step, 3);
  EXPECT_EQ(read_file(a + "/checkpoint-4/model.safetensors"), read_file(b + "/checkpoint-4/model.safetensors"));
  EXPECT_EQ(comparable(ra.log_history), comparable(rb.log_history));
  // The loss went down on this tiny set (the trainer learns at all).
  EXPECT_LT(ra.log_history[3]["loss"].get<double>(), ra.log_history[0]["loss"].get<double>());
  EXPECT_TRUE(fs::exists(a + "/metrics.jsonl"));
}

TEST(Resume, GrpoOnePlusOneEqualsTwo) {
  const std::string a = world().root + "/grpo_a", b = world().root + "/grpo_b";
  GrpoConfig ca;
  base(ca, a);
  ca.save_steps = 1;
  ca.num_generations = 4;
  ca.per_device_train_batch_size = 4;
  ca.gradient_accumulation_steps = 2;  // 2 prompts x 4 completions per round
  ca.num_iterations = 1;
  ca.max_completion_length = 12;
  // The external reward varies between random completions, so advantages and gradients are
  // non-zero (iou and format are 0 for an untrained model).
  ca.reward_funcs = {"iou", "format",
                     std::string("external:python3 ") + REFRACT_FIXTURES_DIR + "/train/distinct_chars_reward.py"};
  ca.beta = 0.04;                      // exercises the frozen reference copy
  ca.max_steps = 2;
  ca.log_completions = true;
  RunSummary ra = run_grpo(ca);
  GrpoConfig cb = ca;
  cb.output_dir = b;
  cb.max_steps = 1;
  run_grpo(cb);
  cb.max_steps = 2;
  cb.resume_from_checkpoint = "true";
  RunSummary rb = run_grpo(cb);
  EXPECT_EQ(rb.first_step, 2);
  EXPECT_EQ(read_file(a + "/checkpoint-2/model.safetensors"), read_file(b + "/checkpoint-2/model.safetensors"));
  EXPECT_EQ(comparable(ra.log_history), comparable(rb.log_history));
  const auto& h = ra.log_history[0];
  for (const char* k : {"loss", "reward", "reward_std", "kl", "entropy", "clip_ratio/region_mean",
                        "completions/mean_length", "rewards/iou/mean", "num_tokens", "grad_norm",
                        "learning_rate", "frac_reward_zero_std", "time/generation"})
    EXPECT_TRUE(h.contains(k)) << k;
  // mu = 1: the ratio is 1, nothing is clipped.
  EXPECT_EQ(h["clip_ratio/region_mean"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(a + "/completions.jsonl"));
  EXPECT_GT(h["grad_norm"].get<double>(), 0.0);
  EXPECT_GT(h["reward_std"].get<double>(), 0.0);
}

// use_peft: checkpoints hold only the PEFT adapter, the base never changes, the reference is
// the base with adapters disabled (B = 0 at the start, so the first KL is exactly 0), and
// resume continues exactly.
TEST(Resume, GrpoLoraTwoPlusTwoEqualsFour) {
  const std::string a = world().root + "/grpo_lora_a", b = world().root + "/grpo_lora_b";
  GrpoConfig ca;
  base(ca, a);
  ca.save_steps = 1;
  ca.num_generations = 4;
  ca.per_device_train_batch_size = 4;
  ca.gradient_accumulation_steps = 2;
  ca.num_iterations = 2;               // old log-probs as well; a round spans 2 steps

  ca.max_completion_length = 12;
  ca.reward_funcs = {std::string("external:python3 ") + REFRACT_FIXTURES_DIR + "/train/distinct_chars_reward.py"};
  ca.beta = 0.04;
  ca.use_peft = true;
  ca.lora_r = 4;
  ca.lora_alpha = 8;
  ca.lora_dropout = 0.0;
  ca.learning_rate = 1e-2;
  ca.max_steps = 4;
  RunSummary ra = run_grpo(ca);
  GrpoConfig cb = ca;
  cb.output_dir = b;
  cb.max_steps = 2;  // resume at a round boundary (mid-round resume regenerates the round)
  run_grpo(cb);
  cb.max_steps = 4;
  cb.resume_from_checkpoint = "true";
  RunSummary rb = run_grpo(cb);
  EXPECT_EQ(rb.first_step, 3);
  for (const char* f : {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(a + "/checkpoint-4/" + f)) << f;
  EXPECT_FALSE(fs::exists(a + "/checkpoint-4/model.safetensors"));
  EXPECT_EQ(read_file(a + "/checkpoint-4/adapter_model.safetensors"),
            read_file(b + "/checkpoint-4/adapter_model.safetensors"));
  EXPECT_EQ(comparable(ra.log_history), comparable(rb.log_history));
  // Step 1 starts from B = 0: policy == reference, KL exactly 0; later steps move away.
  EXPECT_EQ(ra.log_history[0]["kl"].get<double>(), 0.0);
  EXPECT_GT(ra.log_history[3]["kl"].get<double>(), 0.0);
  EXPECT_GT(ra.log_history[0]["grad_norm"].get<double>(), 0.0);
  // The adapter changed (B is no longer 0) and is readable as a PEFT adapter.
  auto t = refract::io::load_tensors(a + "/checkpoint-4/adapter_model.safetensors");
  double b_abs = 0;
  for (auto& [k, v] : t)
    if (k.find("lora_B") != std::string::npos) b_abs += v.abs().sum().item<double>();
  EXPECT_GT(b_abs, 0.0);
  EXPECT_NE(t.count("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"), 0u);
}

// Dynamic sampling: with `iou` alone a random model scores 0 everywhere, so every group agrees
// and is redrawn max_resample_times times (2 prompts x 2 attempts = 4 per round); with a reward
// that varies between completions no group agrees and nothing is redrawn.
TEST(DynamicSampling, RedrawsExactlyTheAgreeingGroups) {
  GrpoConfig c;
  base(c, world().root + "/grpo_dyn_a");
  c.num_generations = 4;
  c.per_device_train_batch_size = 8;  // one round = 2 prompts x 4
  c.max_completion_length = 8;
  c.max_steps = 1;
  c.max_resample_times = 2;
  c.reward_funcs = {"iou"};
  RunSummary a = run_grpo(c);
  EXPECT_EQ(a.log_history[0]["dynamic_sampling/resampled_groups"].get<double>(), 4.0);
  EXPECT_EQ(a.log_history[0]["frac_reward_zero_std"].get<double>(), 1.0);
  c.output_dir = world().root + "/grpo_dyn_b";
  c.reward_funcs = {std::string("external:python3 ") + REFRACT_FIXTURES_DIR + "/train/distinct_chars_reward.py"};
  RunSummary b = run_grpo(c);
  EXPECT_EQ(b.log_history[0]["dynamic_sampling/resampled_groups"].get<double>(), 0.0);
}

// Background prefetching changes when samples are encoded, never what the run computes.
TEST(Prefetch, WorkersGiveTheSameRunAsEncodingOnDemand) {
  SftConfig c;
  base(c, world().root + "/sft_prefetch_0");
  c.per_device_train_batch_size = 4;
  c.max_steps = 7;  // 28 draws of 24 samples: crosses an epoch boundary
  c.data.num_workers = 0;
  RunSummary a = run_sft(c);
  c.output_dir = world().root + "/sft_prefetch_2";
  c.data.num_workers = 2;
  RunSummary b = run_sft(c);
  EXPECT_EQ(read_file(world().root + "/sft_prefetch_0/checkpoint-7/model.safetensors"),
            read_file(world().root + "/sft_prefetch_2/checkpoint-7/model.safetensors"));
  EXPECT_EQ(comparable(a.log_history), comparable(b.log_history));
}
