// The memory plan of a training run (`refract grpo|sft --dry_run`): parameters, and bytes per
// rank for weights, gradients, optimiser state, activations, logits and the rollout's KV cache,
// computed from config.json and the training settings alone (no weights, no data, no torch).
//
// What it counts is what refract's trainers hold (train/grpo_trainer.cpp, sft_trainer.cpp,
// logprobs.cpp, model/*): upper bounds from the length limits (max_prompt_length,
// max_completion_length, max_length) and max_pixels, not from a dataset. docs/memory.md gives
// the derivation, the check against measured peak RSS and the plans for Qwen2.5-VL-3B/7B and
// Qwen2-VL-2B.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/plan_model.h"

namespace refract::train {

struct MemoryPlanInputs {
  std::string trainer = "grpo";  // grpo | sft
  PlanModel model;
  Trainability trainability;
  double lora_dropout = 0.05;
  std::string torch_dtype = "float32";  // storage dtype of the loaded weights (auto resolved)
  int64_t per_device_train_batch_size = 8;  // GRPO: completions per micro-batch
  int64_t steps_per_generation = 1;         // GRPO: micro-batches per generation round
  int64_t num_generations = 8;              // G
  double beta = 0.0;                        // GRPO: != 0 with full fine-tuning keeps a reference copy
  int64_t max_prompt_length = 1024;         // tokens incl. image tokens
  int64_t max_completion_length = 512;      // GRPO
  int64_t max_length = 2048;                // SFT: prompt + response
  int64_t max_pixels = 12845056;            // per image
  // Memory features, named as HF TrainingArguments / issue 12 name them. The plan takes them as
  // inputs whether or not the trainer implements them yet (the CLI says which it does).
  bool gradient_checkpointing = false;
  bool bf16 = false;                        // autocast bf16 compute, fp32 master weights + AdamW state
  bool optimizer_sharding = false;          // ZeRO stage 1 over world_size ranks
  int64_t world_size = 1;
  // Attention through at::scaled_dot_product_attention (libtorch >= 2): no probabilities kept.
  bool fused_attention = false;
  // The run's length and device, for the host-side cache of encoded samples.
  std::string device = "cpu";
  int64_t max_steps = -1;                   // <= 0: epochs (the cache's size is the dataset's)
  int64_t gradient_accumulation_steps = 1;
  int64_t num_iterations = 1;               // GRPO mu
  // Settings above that the trainer does not implement yet (printed next to them).
};

// One line of the plan.
struct MemoryItem {
  std::string name;
  double bytes = 0;
  std::string detail;  // how it was counted
};

struct MemoryPlan {
  int64_t total_parameters = 0;
  int64_t trainable_parameters = 0;
  int64_t vision_parameters = 0;
  // Derived lengths.
  int64_t image_tokens = 0;   // merged tokens of one image (bounded by the prompt / sequence)
  int64_t image_patches = 0;  // vision-tower sequence of one image
  // Persistent state (whole run).
  std::vector<MemoryItem> persistent;  // weights, master weights, reference, gradients, optimizer
  // Training micro-batch (forward + backward).
  std::vector<MemoryItem> training;    // decoder / vision activations, attention, logits
  // Rollout (GRPO): KV cache and generation transients.
  std::vector<MemoryItem> rollout;
  // Host RAM: the encoded samples (pixel values) train/sample_cache.h keeps once encoded.
  std::vector<MemoryItem> host;
  double persistent_bytes = 0, training_bytes = 0, rollout_bytes = 0, host_bytes = 0;
  // persistent + max(training, rollout), + host when the device is the CPU.
  double peak_bytes = 0;
  std::vector<std::string> notes;
};

// Fails naming the setting when an input is out of range.
MemoryPlan plan_memory(const MemoryPlanInputs& in);

// Bytes per element of a dtype name (float32 4, bfloat16 / float16 2).
int64_t dtype_bytes(const std::string& torch_dtype);
// "1.23 GiB" / "45.6 MiB".
std::string format_bytes(double bytes);
// The plan as the text `--dry_run` prints.
std::string format_plan(const MemoryPlanInputs& in, const MemoryPlan& plan);

}  // namespace refract::train
