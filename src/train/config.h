// Training settings: plain structs with TRL / VLM-R1 names (no torch; the CLI includes this).
// The same snake_case key is the YAML key, the --flag and the field. Defaults follow TRL today
// (ref: https://github.com/huggingface/trl/blob/main/trl/trainer/grpo_config.py);
// configs/vlm_r1_rec.yaml holds VLM-R1's REC recipe.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/config.h"
#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::train {

// What GRPO and SFT share: optimiser, schedule, model, LoRA, checkpoints, logging, data. The
// runtime settings (model_name_or_path, adapter, device, torch_dtype, threads, min_pixels,
// max_pixels) are the ones every command that opens a model has (model/model_settings.h).
struct TrainingConfig : model::ModelSettings {
  // data (data keys: data/config.h, declared after these; seed and pixels are copied in)
  data::DataConfig data;
  // optimiser and schedule
  double learning_rate = 1e-6;
  std::string lr_scheduler_type = "linear";  // constant | linear | cosine | warmup_stable_decay
  int64_t num_decay_steps = 0;               // warmup_stable_decay: the annealed tail (HF kwargs)
  double min_lr_ratio = 0.0;                 // warmup_stable_decay: final lr / learning_rate
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;                  // wins over warmup_ratio when > 0
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  int64_t gradient_accumulation_steps = 1;
  int64_t per_device_train_batch_size = 8;   // GRPO: completions per micro-batch (not prompts)
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;                    // > 0 overrides num_train_epochs
  // logging and checkpoints
  int64_t logging_steps = 10;
  int64_t save_steps = 500;
  int64_t save_total_limit = -1;             // <= 0: keep all
  std::string resume_from_checkpoint;        // "" | "true" (latest in output_dir) | a path
  std::string output_dir = "output";
  std::vector<std::string> report_to = {"tensorboard"};  // tensorboard | none
  bool log_completions = false;
  int64_t seed = 42;
  // model surgery
  bool use_peft = false;
  int64_t lora_r = 8;
  int64_t lora_alpha = 32;
  double lora_dropout = 0.05;
  std::vector<std::string> lora_target_modules = {"all-linear"};
  bool freeze_vision_modules = false;        // = ms-swift freeze_vit
  bool freeze_aligner = false;               // the PatchMerger
  double max_seconds = 0.0;                  // > 0: stop (and save) after this wall time
  // memory and precision (HF TrainingArguments names)
  bool gradient_checkpointing = false;       // recompute decoder / vision block activations in backward
  bool bf16 = false;                         // bf16 compute, fp32 master weights and AdamW state
  std::string coordinate_format = "absolute_resized";  // how boxes in answers are read (rewards, eval)
  // evaluation during training (HF TrainingArguments names; the core of `refract eval`)
  std::string eval_strategy = "no";          // no | steps
  int64_t eval_steps = 0;                    // every N steps; 0 = logging_steps (HF)
  std::string eval_data_file_paths;          // held-out data, ':'-separated like data_file_paths
  std::string eval_image_folders;            // one folder per eval data file
  std::string eval_dataset_name;             // or a VLM-R1 data-config YAML of held-out data
  int64_t per_device_eval_batch_size = 8;    // prompts per generation batch
  int64_t eval_max_samples = 0;              // > 0: only the first N held-out samples
  int64_t eval_max_new_tokens = 128;         // generation length cap of the evaluation
  std::string eval_task = "auto";            // auto (the samples') | rec | det | count | ocr | cls
  std::string metric_for_best_model;         // e.g. accuracy (= eval/accuracy); "" = no best kept
  std::string greater_is_better = "auto";    // auto: false for cer, mae, *loss; true otherwise
  bool load_best_model_at_end = false;       // the run ends with (and reports) the best checkpoint
  // data parallel (docs/distributed.md): RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT from the
  // environment (torchrun), or the built-in launcher
  int64_t nproc_per_node = 0;                // > 1: start this many local workers (built-in launcher)
  int64_t master_port = 29500;               // built-in launcher's rendezvous port (0: a free one)
  std::string ddp_backend = "auto";          // auto (nccl on cuda, gloo on cpu) | nccl | gloo
  double ddp_timeout = 1800;                 // seconds a collective waits for a peer (accelerate's default)
  bool optimizer_sharding = false;           // ZeRO-1: AdamW moments split over the ranks
  bool evaluating() const { return eval_strategy == "steps"; }
  int64_t effective_eval_steps() const { return eval_steps > 0 ? eval_steps : logging_steps; }
};

struct GrpoConfig : TrainingConfig {
  int64_t num_generations = 8;               // G
  double beta = 0.0;
  double epsilon = 0.2;
  double epsilon_high = -1.0;                // < 0: same as epsilon
  std::string loss_type = "dapo";            // grpo | bnpo | dr_grpo | dapo
  std::string scale_rewards = "group";       // group | batch | none
  std::string importance_sampling_level = "token";  // token | sequence (GSPO)
  int64_t num_iterations = 1;                // mu
  int64_t steps_per_generation = -1;         // < 0: gradient_accumulation_steps
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;                         // 0 = off
  double repetition_penalty = 1.0;
  int64_t max_completion_length = 512;
  bool mask_truncated_completions = false;
  double top_entropy_quantile = 1.0;         // 1.0 = every token
  std::vector<std::string> reward_funcs;
  std::vector<double> reward_weights;        // empty = 1 each
  std::string reward_method;                 // default accu_reward_method for `accuracy`
  std::string format_pattern;                // "" = VLM-R1's <think>..</think><answer>..</answer>
  nlohmann::json reward_kwargs = nlohmann::json::object();  // {reward: {setting: value}}
  int64_t max_resample_times = 0;            // dynamic sampling: redraw all-agree groups

  double effective_epsilon_high() const { return epsilon_high < 0 ? epsilon : epsilon_high; }
  int64_t effective_steps_per_generation() const {
    return steps_per_generation > 0 ? steps_per_generation : gradient_accumulation_steps;
  }
};

struct SftConfig : TrainingConfig {
  int64_t max_length = 2048;  // prompt + response tokens; longer samples are dropped with a report
  SftConfig() { learning_rate = 2e-5; }
};

void declare(Options& o, TrainingConfig& c);
void declare(Options& o, GrpoConfig& c);
void declare(Options& o, SftConfig& c);
// Copies the shared keys into the data settings after parsing: seed, and the processor bounds
// when set (0 = the model's preprocessor_config.json, resolved when the model is opened).
inline void sync_data(TrainingConfig& c) {
  c.data.seed = c.seed;
  if (c.min_pixels > 0) c.data.min_pixels = c.min_pixels;
  if (c.max_pixels > 0) c.data.max_pixels = c.max_pixels;
}

// Fails with a message naming the key when settings contradict each other.
void validate(const TrainingConfig& c);
// world_size: the number of data-parallel processes (the global batch counts them).
void validate(const GrpoConfig& c, int64_t world_size = 1);

}  // namespace refract::train
