#include "train/config.h"

#include "common/check.h"
#include "common/options.h"
#include "data/config.h"
#include "rewards/registry.h"

namespace refract::train {


static void declare_base(Options& o, TrainingConfig& c) {
  model::declare(o, static_cast<model::ModelSettings&>(c));
  o.add("learning_rate", &c.learning_rate,
        "peak AdamW learning rate (TRL GRPO 1e-6; ~1e-5 with LoRA)");
  o.add("lr_scheduler_type", &c.lr_scheduler_type, "learning-rate schedule after warmup")
      .choices({"constant", "linear", "cosine", "warmup_stable_decay"});
  o.add("num_decay_steps", &c.num_decay_steps,
        "warmup_stable_decay: steps of the final cosine anneal (HF lr_scheduler_kwargs)");
  o.add("min_lr_ratio", &c.min_lr_ratio,
        "warmup_stable_decay: learning rate reached at the end, as a fraction of learning_rate");
  o.add("warmup_ratio", &c.warmup_ratio, "fraction of the steps spent warming up linearly");
  o.add("warmup_steps", &c.warmup_steps, "warmup steps (overrides warmup_ratio when > 0)");
  o.add("weight_decay", &c.weight_decay, "AdamW decoupled weight decay");
  o.add("adam_beta1", &c.adam_beta1, "AdamW beta1");
  o.add("adam_beta2", &c.adam_beta2, "AdamW beta2");
  o.add("adam_epsilon", &c.adam_epsilon, "AdamW epsilon");
  o.add("gradient_checkpointing", &c.gradient_checkpointing,
        "recompute each decoder layer's and vision block's activations in backward instead of storing "
        "them (less memory, ~1/3 more compute)");
  o.add("bf16", &c.bf16,
        "bf16 mixed precision: matmuls in bf16, fp32 master weights, AdamW state, loss, log-probs, "
        "ratios and KL");
  o.add("max_grad_norm", &c.max_grad_norm, "clip the global gradient L2 norm (<= 0: off)");
  o.add("gradient_accumulation_steps", &c.gradient_accumulation_steps,
        "micro-batches per optimizer step");
  o.add("per_device_train_batch_size", &c.per_device_train_batch_size,
        "micro-batch size; for GRPO it counts COMPLETIONS, not prompts (prompts per round = "
        "per_device_train_batch_size x steps_per_generation / num_generations)");
  o.add("num_train_epochs", &c.num_train_epochs, "passes over the data (when max_steps <= 0)");
  o.add("max_steps", &c.max_steps, "optimizer steps (> 0 overrides num_train_epochs)");
  o.add("logging_steps", &c.logging_steps, "log metrics every N steps");
  o.add("save_steps", &c.save_steps, "save a checkpoint every N steps (<= 0: only at the end)");
  o.add("save_total_limit", &c.save_total_limit, "keep only the newest N checkpoints (<= 0: all)");
  o.add("resume_from_checkpoint", &c.resume_from_checkpoint,
        "checkpoint directory to resume from, or `true` for the latest one in output_dir");
  o.add("output_dir", &c.output_dir, "where checkpoints, metrics.jsonl and events go");
  o.add("report_to", &c.report_to, "tensorboard | none");
  o.add("log_completions", &c.log_completions,
        "write sampled prompts, completions and rewards to completions.jsonl");
  o.add("seed", &c.seed, "random seed (init, sampling, shuffling)");
  o.add("use_peft", &c.use_peft, "train LoRA adapters instead of all weights");
  o.add("lora_r", &c.lora_r, "LoRA rank");
  o.add("lora_alpha", &c.lora_alpha, "LoRA alpha (scale = alpha / r)");
  o.add("lora_dropout", &c.lora_dropout, "LoRA dropout");
  o.add("lora_target_modules", &c.lora_target_modules,
        "module names to adapt; all-linear = every Linear of the language model");
  o.add("freeze_vision_modules", &c.freeze_vision_modules,
        "freeze the vision tower (ms-swift freeze_vit)");
  o.add("freeze_aligner", &c.freeze_aligner, "freeze the vision merger (aligner)");
  o.add("max_seconds", &c.max_seconds, "stop after this wall time and save (<= 0: no limit)");
  o.add("coordinate_format", &c.coordinate_format,
        "how predicted boxes are read (rewards, evaluation): absolute_resized (Qwen2.5-VL), "
        "normalized_1000, absolute")
      .choices({"absolute_resized", "normalized_1000", "absolute"});
  o.add("eval_strategy", &c.eval_strategy, "evaluate on held-out data: no, or every eval_steps steps")
      .choices({"no", "steps"});
  o.add("eval_steps", &c.eval_steps, "evaluate every N steps (0: logging_steps)");
  o.add("eval_data_file_paths", &c.eval_data_file_paths,
        "held-out data files, ':'-separated (formats as data_file_paths)");
  o.add("eval_image_folders", &c.eval_image_folders, "one image folder per eval data file, ':'-separated");
  o.add("eval_dataset_name", &c.eval_dataset_name, "held-out data as a VLM-R1 data-config YAML");
  o.add("per_device_eval_batch_size", &c.per_device_eval_batch_size, "prompts per evaluation generation batch");
  o.add("eval_max_samples", &c.eval_max_samples, "evaluate on the first N held-out samples (0: all)");
  o.add("eval_max_new_tokens", &c.eval_max_new_tokens, "generation length cap of the evaluation");
  o.add("eval_task", &c.eval_task, "metrics of the evaluation; auto = the held-out samples' task")
      .choices({"auto", "rec", "det", "count", "ocr", "cls"});
  o.add("metric_for_best_model", &c.metric_for_best_model,
        "evaluation metric that picks the best checkpoint (e.g. accuracy, AP, cer; kept from deletion)");
  o.add("greater_is_better", &c.greater_is_better,
        "whether a larger metric_for_best_model is better (auto: false for cer, mae and losses)")
      .choices({"auto", "true", "false"});
  o.add("load_best_model_at_end", &c.load_best_model_at_end,
        "end the run with the best checkpoint's weights and report it as the final checkpoint");
  o.add("nproc_per_node", &c.nproc_per_node,
        "start N data-parallel worker processes on this machine (built-in launcher; ignored in a "
        "process started by torchrun, i.e. with WORLD_SIZE set)");
  o.add("master_port", &c.master_port, "rendezvous port of the built-in launcher (0: a free port)");
  o.add("ddp_backend", &c.ddp_backend, "collective backend: nccl on cuda, gloo on cpu (auto)")
      .choices({"auto", "nccl", "gloo"});
  o.add("ddp_timeout", &c.ddp_timeout,
        "seconds a collective waits for the other ranks before failing (a dead or hung peer)");
  o.add("optimizer_sharding", &c.optimizer_sharding,
        "ZeRO-1: each rank keeps the AdamW state of 1/WORLD_SIZE of the parameters");
}

void declare(Options& o, TrainingConfig& c) {
  declare_base(o, c);
  declare(o, c.data);  // the data keys not declared above (seed is shared: see sync_data)
}

void declare(Options& o, GrpoConfig& c) {
  declare_base(o, c);
  o.add("num_generations", &c.num_generations, "completions sampled per prompt (G, >= 2)");
  o.add("beta", &c.beta, "KL coefficient against the reference policy (0 = no reference)");
  o.add("epsilon", &c.epsilon, "lower clipping range of the importance ratio");
  o.add("epsilon_high", &c.epsilon_high, "upper clipping range (< 0: = epsilon; DAPO 0.28)");
  o.add("loss_type", &c.loss_type, "how token losses are averaged")
      .choices({"grpo", "bnpo", "dr_grpo", "dapo"});
  o.add("scale_rewards", &c.scale_rewards, "advantage std: per group, whole batch, or none")
      .choices({"group", "batch", "none"});
  o.add("importance_sampling_level", &c.importance_sampling_level,
        "token ratios, or one per sequence (GSPO)")
      .choices({"token", "sequence"});
  o.add("num_iterations", &c.num_iterations, "updates per generation round (mu)");
  o.add("steps_per_generation", &c.steps_per_generation,
        "micro-batches per generation round (< 0: gradient_accumulation_steps)");
  o.add("temperature", &c.temperature, "sampling temperature (log-probs use it too)");
  o.add("top_p", &c.top_p, "nucleus sampling (1 = off)");
  o.add("top_k", &c.top_k, "top-k sampling (0 = off)");
  o.add("repetition_penalty", &c.repetition_penalty, "HF repetition penalty (1 = off)");
  o.add("max_completion_length", &c.max_completion_length, "longest completion in tokens");
  o.add("mask_truncated_completions", &c.mask_truncated_completions,
        "leave completions without EOS out of the loss");
  o.add("top_entropy_quantile", &c.top_entropy_quantile,
        "train only on tokens above this entropy quantile (1 = all tokens)");
  o.add("reward_funcs", &c.reward_funcs, "reward names from the registry (e.g. iou format)");
  o.add("reward_weights", &c.reward_weights, "one weight per reward (default 1 each)");
  o.add("reward_method", &c.reward_method, "default accu_reward_method for `accuracy`");
  o.add("format_pattern", &c.format_pattern,
        "regex the `format` / `rec_format` rewards match (empty: VLM-R1's think + answer pattern)");
  o.add("reward_kwargs", &c.reward_kwargs,
        "per-reward settings, a mapping keyed by the names in reward_funcs, e.g. YAML "
        "reward_kwargs: {soft_overlong: {soft_punish_cache: 20}, iou: {iou_convention: vlm_r1}}; "
        "flag: --reward_kwargs iou.iou_convention=vlm_r1 (repeatable) or a JSON object. "
        "Settings, types and defaults: refract rewards --list");
  o.add("max_resample_times", &c.max_resample_times,
        "dynamic sampling: redraw groups whose rewards all agree, at most N times");
  declare(o, c.data);
}

void declare(Options& o, SftConfig& c) {
  declare_base(o, c);
  o.add("max_length", &c.max_length, "longest prompt + response in tokens (longer: dropped)");
  declare(o, c.data);
}

void validate(const TrainingConfig& c) {
  REFRACT_CHECK(c.learning_rate >= 0) << "learning_rate must be >= 0, got " << c.learning_rate;
  REFRACT_CHECK(c.gradient_accumulation_steps >= 1)
      << "gradient_accumulation_steps must be >= 1, got " << c.gradient_accumulation_steps;
  REFRACT_CHECK(c.per_device_train_batch_size >= 1)
      << "per_device_train_batch_size must be >= 1, got " << c.per_device_train_batch_size;
  REFRACT_CHECK(c.warmup_ratio >= 0 && c.warmup_ratio <= 1)
      << "warmup_ratio must be in [0, 1], got " << c.warmup_ratio;
  REFRACT_CHECK(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1)
      << "min_lr_ratio must be in [0, 1], got " << c.min_lr_ratio;
  REFRACT_CHECK(c.lr_scheduler_type != "warmup_stable_decay" || c.num_decay_steps >= 1)
      << "lr_scheduler_type warmup_stable_decay needs num_decay_steps >= 1";
  model::validate(c);
  REFRACT_CHECK(c.adapter.empty() || c.use_peft)
      << "adapter: continuing an adapter needs use_peft true (the adapter is what trains)";
  REFRACT_CHECK(c.logging_steps >= 1) << "logging_steps must be >= 1, got " << c.logging_steps;
  REFRACT_CHECK(c.ddp_timeout > 0) << "ddp_timeout must be > 0 seconds, got " << c.ddp_timeout;
  REFRACT_CHECK(c.nproc_per_node >= 0) << "nproc_per_node must be >= 0, got " << c.nproc_per_node;
  REFRACT_CHECK(!c.use_peft || c.lora_r >= 1) << "lora_r must be >= 1, got " << c.lora_r;
  // Evaluation during training (HF TrainingArguments' rules where it has them).
  const bool eval_data = !c.eval_data_file_paths.empty() || !c.eval_dataset_name.empty();
  REFRACT_CHECK(!c.evaluating() || eval_data)
      << "eval_strategy steps needs held-out data: set eval_data_file_paths or eval_dataset_name";
  REFRACT_CHECK(c.evaluating() || !eval_data)
      << "eval_data_file_paths / eval_dataset_name given but eval_strategy is no: set eval_strategy steps";
  REFRACT_CHECK(c.eval_steps >= 0) << "eval_steps must be >= 0, got " << c.eval_steps;
  REFRACT_CHECK(c.per_device_eval_batch_size >= 1)
      << "per_device_eval_batch_size must be >= 1, got " << c.per_device_eval_batch_size;
  REFRACT_CHECK(c.eval_max_new_tokens >= 1) << "eval_max_new_tokens must be >= 1, got " << c.eval_max_new_tokens;
  REFRACT_CHECK(c.metric_for_best_model.empty() || c.evaluating())
      << "metric_for_best_model '" << c.metric_for_best_model << "' needs eval_strategy steps (no evaluation runs)";
  REFRACT_CHECK(!c.load_best_model_at_end || !c.metric_for_best_model.empty())
      << "load_best_model_at_end needs metric_for_best_model (e.g. accuracy)";
  // Only evaluations at saved steps can name a best checkpoint; HF asks the same alignment.
  REFRACT_CHECK(!c.load_best_model_at_end || (c.save_steps > 0 && c.save_steps % c.effective_eval_steps() == 0))
      << "load_best_model_at_end: save_steps (" << c.save_steps << ") must be a multiple of eval_steps ("
      << c.effective_eval_steps() << ") so that evaluated steps are saved";
}

void validate(const GrpoConfig& c, int64_t world_size) {
  validate(static_cast<const TrainingConfig&>(c));
  REFRACT_CHECK(c.num_generations >= 2)
      << "num_generations must be >= 2 (advantages need a group), got " << c.num_generations;
  const int64_t gen_batch = c.per_device_train_batch_size * world_size * c.effective_steps_per_generation();
  // ref: trl GRPOConfig.__post_init__: the global generation batch must be divisible by G.
  if (world_size == 1)
    REFRACT_CHECK(gen_batch % c.num_generations == 0)
        << "per_device_train_batch_size x steps_per_generation (" << gen_batch
        << ") must be divisible by num_generations (" << c.num_generations << ")";
  else
    REFRACT_CHECK(gen_batch % c.num_generations == 0)
        << "the global generation batch per_device_train_batch_size x WORLD_SIZE x steps_per_generation ("
        << c.per_device_train_batch_size << " x " << world_size << " x " << c.effective_steps_per_generation()
        << " = " << gen_batch << ") must be divisible by num_generations (" << c.num_generations << ")";
  REFRACT_CHECK(c.num_iterations >= 1) << "num_iterations must be >= 1, got " << c.num_iterations;
  REFRACT_CHECK(c.temperature > 0) << "temperature must be > 0, got " << c.temperature;
  REFRACT_CHECK(c.epsilon >= 0) << "epsilon must be >= 0, got " << c.epsilon;
  REFRACT_CHECK(c.top_entropy_quantile > 0 && c.top_entropy_quantile <= 1)
      << "top_entropy_quantile must be in (0, 1], got " << c.top_entropy_quantile;
  REFRACT_CHECK(c.reward_weights.empty() || c.reward_weights.size() == c.reward_funcs.size())
      << "reward_weights has " << c.reward_weights.size() << " entries but reward_funcs has "
      << c.reward_funcs.size();
  REFRACT_CHECK(c.max_completion_length >= 1)
      << "max_completion_length must be >= 1, got " << c.max_completion_length;
  rewards::validate_reward_kwargs(c.reward_funcs, c.reward_kwargs);
}

}  // namespace refract::train
