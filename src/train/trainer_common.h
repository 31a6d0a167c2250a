// What GRPO and SFT share: model / tokenizer / data setup, the deterministic data order, the
// optimizer + schedule, checkpoint save / resume and the step loop's bookkeeping.
//
// Exact resume: every source of randomness is derived from (seed, global_step) at the start
// of each step (torch's generator, sampling seeds, the data order by epoch), and the data
// position is a function of the step. So N steps + resume + N steps == 2N steps on CPU.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/encode.h"
#include "train/scheduler.h"
#include "train/train_logger.h"

namespace refract::train {

torch::Device parse_device(const std::string& name);

// Shuffled sample order, one permutation per epoch, from (seed, epoch) only.
class DataOrder {
 public:
  DataOrder(int64_t num_samples, uint64_t seed) : n_(num_samples), seed_(seed) {}
  // Index of the k-th sample drawn overall (k = epoch * n + position).
  int64_t at(int64_t k);
  int64_t size() const { return n_; }

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

// Loaded once per run.
struct TrainSetup {
  torch::Device device{torch::kCPU};
  model::Qwen2_5_VL model{nullptr};
  // use_peft: the adapters' settings; checkpoints then hold the PEFT adapter (not the model)
  // and the GRPO reference policy is the base with adapters disabled.
  std::optional<model::LoraConfig> lora;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::vector<data::Sample> samples;
  std::vector<std::optional<EncodedSample>> encoded;  // lazily filled cache (never resized)
  vision::PreprocessConfig preprocess;
  int64_t eos_id = -1;
  int64_t pad_id = 0;
  // The encoded sample (chat template, decoded + preprocessed images); filled on first use,
  // or ahead of time by prefetch(). Waits for a sample a worker is encoding.
  const EncodedSample& encode(int64_t index, bool with_response);
  // Encodes these samples on background workers (data num_workers) so the step that needs them
  // finds them ready; the results are the same as encode() on demand.
  void prefetch(const std::vector<int64_t>& indices, bool with_response);
  ~TrainSetup();
  TrainSetup() = default;
  TrainSetup(TrainSetup&&) = default;

  struct Prefetcher;  // workers, queue and the lock guarding `encoded` while they run
  std::unique_ptr<Prefetcher> prefetcher;
};

// Loads the model (dtype, device, freezing), tokenizer and data; sets threads.
TrainSetup make_setup(const TrainingConfig& cfg);
// Starts `num_workers` background encoders for s.prefetch() (0 = encode on demand only). Call
// once `s` has its final address (the workers keep a pointer to it).
void start_prefetch_workers(TrainSetup& s, int64_t num_workers);

// The optimizer, schedule, logger and checkpoint bookkeeping of one run.
class TrainLoop {
 public:
  TrainLoop(const TrainingConfig& cfg, TrainSetup& setup, int64_t total_steps,
            double samples_per_step);
  // Resumes when cfg.resume_from_checkpoint says so; returns the first step to run (1-based).
  int64_t start();
  // Seeds torch for `step` and applies the scheduled learning rate for it.
  void begin_step(int64_t step);
  // Clip + optimizer step; returns grad_norm.
  double optimizer_step();
  // Logs the step and saves a checkpoint when due (or when `force_save`).
  void end_step(int64_t step, std::map<std::string, double> metrics, bool force_save);
  bool out_of_time() const;
  double epoch_at(int64_t step) const;
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  TrainLogger& logger() { return *logger_; }
  std::vector<torch::Tensor> trainable() const { return trainable_; }
  double learning_rate() const { return lr_; }
  int64_t total_steps() const { return total_steps_; }
  void save(int64_t step);
  // Trainer-specific state saved in trainer_state.json (refract_extra) and restored by start().
  std::function<nlohmann::json()> get_extra;
  std::function<void(const nlohmann::json&)> set_extra;

 private:
  const TrainingConfig& cfg_;
  TrainSetup& setup_;
  int64_t total_steps_;
  double samples_per_step_;
  std::vector<torch::Tensor> trainable_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  LrSchedule schedule_;
  std::unique_ptr<TrainLogger> logger_;
  double lr_ = 0;
  int64_t first_step_ = 1;
  int64_t last_saved_ = -1;
  std::chrono::steady_clock::time_point start_time_;
};

// Right-pads rows of ids to [B, T] with `pad`; mask 1 on real tokens.
void pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad, torch::Tensor* ids,
               torch::Tensor* mask);

}  // namespace refract::train
