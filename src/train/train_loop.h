// What GRPO and SFT share: the model and data of a run (TrainSetup) and the one training loop
// (TrainLoop): optimizer, schedule, resume, logging, checkpoints, stopping on max_steps or
// max_seconds. A trainer is a `train_step(step)` function handed to TrainLoop::run.
//
// Exact resume: every source of randomness is derived from (seed, global_step) at the start
// of each step (torch's generator, sampling seeds, the data order by epoch), and the data
// position is a function of the step. So N steps + resume + N steps == 2N steps on CPU.
//
// Evaluation (eval_strategy steps): every eval_steps the loop runs the evaluation core
// (train/evaluate.h, as `refract eval`) on the held-out data between two steps, without
// touching the training's randomness or the module's mode, so the weights after N steps are
// the same with and without it. The best checkpoint by metric_for_best_model is kept.
//
// Data parallel (docs/distributed.md): TrainSetup joins the job its environment describes
// (setup.dist: rank, world size, collectives; world 1 for one process). The loop sums the
// gradients over ranks in buckets before clipping, steps AdamW (whole, or this rank's shard with
// optimizer_sharding), and only rank 0 writes logs, evaluations and checkpoints; every rank
// loads on resume. The trainers spread each step's samples over the ranks.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/order.h"
#include "distributed/dist.h"
#include "distributed/zero.h"
#include "model/lora.h"
#include "model/open_model.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/evaluate.h"
#include "train/run.h"
#include "train/sample_cache.h"
#include "train/scheduler.h"
#include "train/train_logger.h"

namespace refract::train {

// The model (opened as every command opens it, then prepared for training: LoRA, freezing)
// and the validated data of one run, with the order samples are drawn in and their encoder.
struct TrainSetup {
  // sft_max_length > 0: samples longer than this (prompt + response tokens) are dropped,
  // counted and listed before training starts.
  explicit TrainSetup(const TrainingConfig& cfg, int64_t sft_max_length = 0);
  TrainSetup(const TrainSetup&) = delete;
  TrainSetup& operator=(const TrainSetup&) = delete;

  // First member: joined before the model opens (a CUDA rank's device is cuda:LOCAL_RANK).
  std::unique_ptr<distributed::Dist> dist;
  model::OpenedModel opened;  // model, tokenizer, processor, stop / pad ids, device
  // use_peft: the adapters' settings; checkpoints then hold the PEFT adapter (not the model)
  // and the GRPO reference policy is the base with adapters disabled.
  std::optional<model::LoraConfig> lora;
  std::vector<data::Sample> samples;
  std::unique_ptr<data::DataOrder> order;
  std::unique_ptr<SampleCache> cache;  // encodes samples[i] (ahead of time with data num_workers)

  model::Qwen2_5_VLImpl& model() const { return *opened.model.ptr(); }
  torch::Device device() const { return opened.device; }
};

class TrainLoop {
 public:
  // samples_per_step: dataset samples (GRPO: prompts) one optimizer step consumes; with
  // max_steps <= 0 the run lasts num_train_epochs over the data.
  TrainLoop(const TrainingConfig& cfg, TrainSetup& setup, double samples_per_step);

  // The loop: resume if asked, then for each step train_step(step) -> log -> save when due;
  // stops after max_steps or once max_seconds have passed (saving the last step).
  using StepFn = std::function<std::map<std::string, double>(int64_t step)>;
  RunSummary run(const StepFn& train_step);

  // For train_step: seeds torch for `step` and applies the scheduled learning rate.
  void begin_step(int64_t step);
  // For train_step: gradient all-reduce over ranks + clip + optimizer step; returns grad_norm.
  double optimizer_step();
  distributed::Dist& dist() { return *setup_.dist; }
  TrainLogger& logger() { return *logger_; }
  int64_t total_steps() const { return total_steps_; }
  // Prompt + completion (GRPO) or input (SFT) tokens seen so far; saved with checkpoints.
  int64_t num_tokens = 0;

 private:
  int64_t start();  // resumes when cfg.resume_from_checkpoint says so; returns the first step
  void end_step(int64_t step, std::map<std::string, double> metrics, bool force_save);
  void evaluate(int64_t step);  // logs eval/<metric>, writes output_dir/eval/step-<step>/
  void save(int64_t step);      // also decides whether this step's evaluation is the best
  void load_weights(const std::string& checkpoint_dir);
  bool out_of_time() const;
  double epoch_at(int64_t step) const;

  const TrainingConfig& cfg_;
  TrainSetup& setup_;
  int64_t total_steps_;
  double samples_per_step_;
  std::vector<torch::Tensor> trainable_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;             // unsharded
  std::unique_ptr<distributed::ShardedOptimizer> sharded_;      // optimizer_sharding with > 1 rank
  distributed::CommStats comm_;                                 // gradients + parameters, this run
  distributed::CommStats comm_at_step_start_;
  LrSchedule schedule_;
  std::unique_ptr<TrainLogger> logger_;
  double lr_ = 0;
  int64_t first_step_ = 1;
  int64_t last_saved_ = -1;
  std::chrono::steady_clock::time_point start_time_;
  // Evaluation during training.
  std::unique_ptr<EvalDataset> eval_data_;
  EvalSettings eval_settings_;
  std::string best_metric_key_;      // "eval/<metric_for_best_model>", "" = no best kept
  bool greater_is_better_ = true;
  int64_t last_eval_step_ = -1;
  std::map<std::string, double> last_eval_;
  std::optional<double> best_metric_;  // HF TrainerState.best_metric / best_model_checkpoint
  std::string best_checkpoint_;
};

// Right-pads rows of ids to [B, T] with `pad`; mask 1 on real tokens.
void pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad, torch::Tensor* ids,
               torch::Tensor* mask);

}  // namespace refract::train
