#include "train/dry_run.h"

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "common/options.h"
#include "vision/preprocessor_config.h"

namespace refract::train {
namespace {

const char* const kPlanKeys[] = {"gradient_checkpointing", "bf16", "optimizer_sharding"};

// A setting's value as on / off, whoever declared it and with whichever type.
bool setting_on(const nlohmann::json& settings, const std::string& key) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() != 0;
  if (it->is_string()) {
    const std::string v = it->get<std::string>();
    return !(v.empty() || v == "false" || v == "none" || v == "no" || v == "0");
  }
  return true;
}

int64_t world_size_from_env() {
  const char* w = std::getenv("WORLD_SIZE");
  if (w == nullptr || *w == '\0') return 1;
  char* end = nullptr;
  const long long n = std::strtoll(w, &end, 10);
  REFRACT_CHECK(end != w && *end == '\0' && n >= 1) << "WORLD_SIZE must be a positive integer, got '" << w << "'";
  return n;
}

MemoryPlanInputs common_inputs(const TrainingConfig& c, const Options& o, const PlanSettings& s) {
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
  const nlohmann::json settings = o.to_json();
  in.gradient_checkpointing = setting_on(settings, "gradient_checkpointing");
  in.bf16 = setting_on(settings, "bf16");
  in.optimizer_sharding = setting_on(settings, "optimizer_sharding");
  in.world_size = world_size_from_env();
  in.device = c.device;
  in.max_steps = c.max_steps;
  in.gradient_accumulation_steps = c.gradient_accumulation_steps;
  in.plan_only_settings = s.plan_only;
  return in;
}

}  // namespace

void declare(Options& o, PlanSettings& s) {
  o.add("dry_run", &s.dry_run,
        "print the memory plan (parameters; bytes per rank for weights, gradients, optimizer state, activations, "
        "logits, the rollout's KV cache) from config.json and the settings, then exit without training");
  declare_memory_features(o, s);
}

void declare_memory_features(Options& o, PlanSettings& s) {
  bool* fields[] = {&s.gradient_checkpointing, &s.bf16, &s.optimizer_sharding};
  const char* help[] = {
      "recompute decoder layers and vision blocks in backward (memory plan input; see --dry_run)",
      "bf16 compute with fp32 master weights and fp32 AdamW state (memory plan input; see --dry_run)",
      "ZeRO stage 1: AdamW state sharded over WORLD_SIZE ranks (memory plan input; see --dry_run)"};
  for (int i = 0; i < 3; ++i) {
    if (o.has(kPlanKeys[i])) continue;  // the trainer declares (and implements) it
    o.add(kPlanKeys[i], fields[i], help[i]);
    s.plan_only.push_back(kPlanKeys[i]);
  }
}

MemoryPlanInputs plan_inputs(const GrpoConfig& c, const Options& o, const PlanSettings& s) {
  MemoryPlanInputs in = common_inputs(c, o, s);
  in.trainer = "grpo";
  in.num_generations = c.num_generations;
  in.steps_per_generation = c.effective_steps_per_generation();
  in.beta = c.beta;
  in.num_iterations = c.num_iterations;
  in.max_completion_length = c.max_completion_length;
  return in;
}

MemoryPlanInputs plan_inputs(const SftConfig& c, const Options& o, const PlanSettings& s) {
  MemoryPlanInputs in = common_inputs(c, o, s);
  in.trainer = "sft";
  in.max_length = c.max_length;
  return in;
}

void check_plan_only_settings(const Options& o, const PlanSettings& s) {
  const nlohmann::json settings = o.to_json();
  for (const auto& key : s.plan_only) {
    REFRACT_CHECK(!setting_on(settings, key))
        << key << ": the trainer does not implement it yet; only --dry_run (the memory plan) takes it";
  }
}

namespace {

template <typename Config>
bool dry_run_or_check(const Config& c, const Options& o, const PlanSettings& s, const std::string& libtorch_version) {
  if (!s.dry_run) {
    check_plan_only_settings(o, s);
    return false;
  }
  MemoryPlanInputs in = plan_inputs(c, o, s);
  in.fused_attention = std::atoi(libtorch_version.c_str()) >= 2;
  std::fputs(format_plan(in, plan_memory(in)).c_str(), stdout);
  return true;
}

}  // namespace

bool handle_dry_run(const GrpoConfig& c, const Options& o, const PlanSettings& s, const std::string& libtorch_version) {
  return dry_run_or_check(c, o, s, libtorch_version);
}

bool handle_dry_run(const SftConfig& c, const Options& o, const PlanSettings& s, const std::string& libtorch_version) {
  return dry_run_or_check(c, o, s, libtorch_version);
}

}  // namespace refract::train
