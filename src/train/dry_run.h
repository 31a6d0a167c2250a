// `refract grpo|sft --dry_run`: print the memory plan (train/memory_plan.h) of the settings and
// exit, without loading weights or data. Torch-free: the CLI calls it directly.
//
// The memory features gradient_checkpointing, bf16 and optimizer_sharding (HF TrainingArguments /
// issue 12 names) are plan inputs whether or not the trainer declares them yet: declare() adds
// each one the trainer's settings have not declared, and the plan reads their values from the
// parsed settings whoever declared them. A real run refuses a plan-only setting that is on.
#pragma once
#include <string>
#include <vector>

#include "train/config.h"
#include "train/memory_plan.h"

namespace refract::train {

struct PlanSettings {
  bool dry_run = false;
  bool gradient_checkpointing = false;
  bool bf16 = false;
  bool optimizer_sharding = false;
  std::vector<std::string> plan_only;  // the keys declared here (the trainer does not know them)
};

// Declares dry_run, and gradient_checkpointing / bf16 / optimizer_sharding when `o` has not.
void declare(Options& o, PlanSettings& s);
// Only the three features (commands that accept a training YAML as is, e.g. `data check`).
void declare_memory_features(Options& o, PlanSettings& s);

// The plan's inputs from parsed settings: config.json of model_name_or_path (and the adapter's
// adapter_config.json, the model's preprocessor_config.json), WORLD_SIZE from the environment.
MemoryPlanInputs plan_inputs(const GrpoConfig& c, const Options& o, const PlanSettings& s);
MemoryPlanInputs plan_inputs(const SftConfig& c, const Options& o, const PlanSettings& s);

// Throws naming the key when a run (not --dry_run) turns on a setting only the plan knows.
void check_plan_only_settings(const Options& o, const PlanSettings& s);

// What `refract grpo|sft` do before training: with --dry_run, print the plan to stdout and return
// true (the command stops there); otherwise check_plan_only_settings() and return false.
// libtorch_version: the binary's libtorch ("2.15.0"); attention is fused from 2 on (model/attention.h).
bool handle_dry_run(const GrpoConfig& c, const Options& o, const PlanSettings& s, const std::string& libtorch_version);
bool handle_dry_run(const SftConfig& c, const Options& o, const PlanSettings& s, const std::string& libtorch_version);

}  // namespace refract::train
