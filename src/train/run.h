// Entry points of the trainers (no torch types: the CLI includes this).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "train/config.h"

namespace refract::train {

struct RunSummary {
  int64_t first_step = 0;       // first step run by this process (> 1 after a resume)
  int64_t last_step = 0;
  double wall_seconds = 0;
  // GRPO: mean sampled reward over the first / last min(10, steps / 4) steps (one round is a
  // few prompts: a single step is noise), and the same per reward function.
  double first_reward = 0;
  double last_reward = 0;
  nlohmann::json first_rewards = nlohmann::json::object();  // {"iou": mean, ...}
  nlohmann::json last_rewards = nlohmann::json::object();
  std::string output_dir;
  std::string final_checkpoint;
  nlohmann::json log_history;
};

// `refract grpo`: TRL GRPOTrainer semantics (docs/training.md;
// ref: https://github.com/huggingface/trl/blob/main/trl/trainer/grpo_trainer.py).
RunSummary run_grpo(const GrpoConfig& config);
// `refract sft`: assistant-token cross-entropy, mean_token_accuracy.
RunSummary run_sft(const SftConfig& config);

}  // namespace refract::train
