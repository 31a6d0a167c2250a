#include "train/dry_run.h"

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/options.h"
#include "vision/preprocessor_config.h"

namespace refract::train {
namespace {

int64_t world_size_from_env() {
  const char* w = std::getenv("WORLD_SIZE");
  if (w == nullptr || *w == '\0') return 1;
  char* end = nullptr;
  const long long n = std::strtoll(w, &end, 10);
  REFRACT_CHECK(end != w && *end == '\0' && n >= 1) << "WORLD_SIZE must be a positive integer, got '" << w << "'";
  return n;
}

MemoryPlanInputs common_inputs(const TrainingConfig& c) {
  REFRACT_CHECK(!c.model_name_or_path.empty()) << "model_name_or_path is required (the plan reads its config.json)";
  MemoryPlanInputs in;
  in.model = read_plan_model(c.model_name_or_path);
  in.torch_dtype = c.torch_dtype == "auto" ? in.model.torch_dtype : c.torch_dtype;
  in.trainability.use_peft = c.use_peft;
  in.trainability.lora_r = c.lora_r;
  in.trainability.lora_target_modules = c.lora_target_modules;
  in.trainability.freeze_vision_modules = c.freeze_vision_modules;
  in.trainability.freeze_aligner = c.freeze_aligner;
  // A continued adapter trains its own modules and rank (TrainSetup: only the adapters train).
  if (!c.adapter.empty()) in.trainability = read_adapter_trainability(c.adapter, in.trainability);
  in.lora_dropout = c.lora_dropout;
  in.per_device_train_batch_size = c.per_device_train_batch_size;
  in.max_prompt_length = c.data.max_prompt_length;
  // max_pixels: the setting, else the model's preprocessor_config.json (as open_model does).
  in.max_pixels = c.max_pixels > 0 ? c.max_pixels : vision::load_preprocessor_config(c.model_name_or_path).max_pixels;
  in.gradient_checkpointing = c.gradient_checkpointing;
  in.bf16 = c.bf16;
  in.optimizer_sharding = c.optimizer_sharding;
  in.world_size = world_size_from_env();
  in.device = c.device;
  in.max_steps = c.max_steps;
  in.gradient_accumulation_steps = c.gradient_accumulation_steps;
  return in;
}

}  // namespace

void declare(Options& o, PlanSettings& s) {
  o.add("dry_run", &s.dry_run,
        "print the memory plan (parameters; bytes per rank for weights, gradients, optimizer state, activations, "
        "logits, the rollout's KV cache) from config.json and the settings, then exit without training");
}

MemoryPlanInputs plan_inputs(const GrpoConfig& c) {
  MemoryPlanInputs in = common_inputs(c);
  in.trainer = "grpo";
  in.num_generations = c.num_generations;
  in.steps_per_generation = c.effective_steps_per_generation();
  in.beta = c.beta;
  in.num_iterations = c.num_iterations;
  in.max_completion_length = c.max_completion_length;
  return in;
}

MemoryPlanInputs plan_inputs(const SftConfig& c) {
  MemoryPlanInputs in = common_inputs(c);
  in.trainer = "sft";
  in.max_length = c.max_length;
  return in;
}

namespace {

template <typename Config>
bool print_plan_if_dry_run(const Config& c, const PlanSettings& s, const std::string& libtorch_version) {
  if (!s.dry_run) return false;
  MemoryPlanInputs in = plan_inputs(c);
  in.fused_attention = std::atoi(libtorch_version.c_str()) >= 2;
  std::fputs(format_plan(in, plan_memory(in)).c_str(), stdout);
  return true;
}

}  // namespace

bool handle_dry_run(const GrpoConfig& c, const PlanSettings& s, const std::string& libtorch_version) {
  return print_plan_if_dry_run(c, s, libtorch_version);
}

bool handle_dry_run(const SftConfig& c, const PlanSettings& s, const std::string& libtorch_version) {
  return print_plan_if_dry_run(c, s, libtorch_version);
}

}  // namespace refract::train
