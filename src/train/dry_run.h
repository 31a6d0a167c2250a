// `refract grpo|sft --dry_run`: print the memory plan (train/memory_plan.h) of the settings and
// exit, without loading weights or data. Torch-free: the CLI calls it directly.
// The memory features (gradient_checkpointing, bf16, optimizer_sharding) are the trainer's own
// settings (train/config.h); the plan reads them from the config like every other setting.
#pragma once
#include <string>

#include "train/config.h"
#include "train/memory_plan.h"

namespace refract::train {

struct PlanSettings {
  bool dry_run = false;
};

void declare(Options& o, PlanSettings& s);

// The plan's inputs from parsed settings: config.json of model_name_or_path (and the adapter's
// adapter_config.json, the model's preprocessor_config.json), WORLD_SIZE from the environment.
MemoryPlanInputs plan_inputs(const GrpoConfig& c);
MemoryPlanInputs plan_inputs(const SftConfig& c);

// What `refract grpo|sft` do before training: with --dry_run, print the plan to stdout and return
// true (the command stops there); otherwise return false.
// libtorch_version: the binary's libtorch ("2.15.0"); attention is fused from 2 on (model/attention.h).
bool handle_dry_run(const GrpoConfig& c, const PlanSettings& s, const std::string& libtorch_version);
bool handle_dry_run(const SftConfig& c, const PlanSettings& s, const std::string& libtorch_version);

}  // namespace refract::train
