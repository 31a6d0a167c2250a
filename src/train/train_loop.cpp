#include "train/train_loop.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/check.h"
#include "common/log.h"
#include "data/rng.h"
#include "data/validate.h"
#include "distributed/grad_sync.h"
#include "train/optim.h"

namespace refract::train {

TrainSetup::TrainSetup(const TrainingConfig& cfg_in, int64_t sft_max_length) {
  TrainingConfig cfg = cfg_in;
  sync_data(cfg);
  const distributed::DistEnv env = distributed::dist_env_from_environment();
  // Ranks other than 0 say only what goes wrong: their info lines would repeat rank 0's.
  if (env.rank != 0 && spdlog::get_level() < spdlog::level::warn) spdlog::set_level(spdlog::level::warn);
  cfg.device = distributed::device_for_rank(cfg.device, env);
  dist = distributed::init_dist(env, cfg.ddp_backend, cfg.ddp_timeout, torch::Device(cfg.device));
  opened = model::open_model(cfg);  // the adapter, if any, stays separate and is what trains
  model::Qwen2_5_VLImpl& m = *opened.model;
  m.train();
  m.set_gradient_checkpointing(cfg.gradient_checkpointing);
  if (cfg.bf16 && m.dtype() != torch::kFloat32) {
    // bf16 mixed precision keeps fp32 master weights (and so fp32 AdamW state); autocast makes
    // the bf16 copies the matmuls use.
    LOG_INFO("bf16: weights loaded as {} are trained as float32 master weights", model::torch_dtype_name(m.dtype()));
    m.to(torch::kFloat32);
  }
  if (cfg.freeze_vision_modules) model::freeze_vision_modules(m);
  if (cfg.freeze_aligner) model::freeze_aligner(m);
  if (opened.adapter) {
    lora = opened.adapter;
    model::freeze_base(m);
    LOG_INFO("continuing adapter {} (r={} alpha={})", cfg.adapter, lora->lora_r, lora->lora_alpha);
  } else if (cfg.use_peft) {
    model::LoraConfig lc;
    lc.lora_r = cfg.lora_r;
    lc.lora_alpha = static_cast<double>(cfg.lora_alpha);
    lc.lora_dropout = cfg.lora_dropout;
    lc.lora_target_modules = cfg.lora_target_modules;
    // lora_A's random init comes from torch's generator: seed it (as HF Trainer's set_seed
    // does before model setup) so a run, and its resume, start from the same adapters.
    torch::manual_seed(static_cast<uint64_t>(cfg.seed));
    const auto adapted = model::apply_lora(m, lc);
    REFRACT_CHECK(!adapted.empty()) << "lora_target_modules: no Linear layer of the model matches";
    // Only the adapters train (PEFT): the base, vision tower included, stays frozen.
    model::freeze_base(m);
    lora = lc;
    LOG_INFO("LoRA r={} alpha={} dropout={} on {} modules", lc.lora_r, lc.lora_alpha, lc.lora_dropout,
             adapted.size());
  }
  // The same checks as `refract data check`, with the processor the model uses: images, boxes,
  // prompt lengths; rejected samples stop the run (on_bad_sample=error) or are reported and
  // skipped, never dropped silently.
  data::DataConfig dc = cfg.data;
  dc.min_pixels = opened.processor.min_pixels;
  dc.max_pixels = opened.processor.max_pixels;
  const text::Tokenizer& tok = opened.tok();
  data::Dataset ds = data::prepare_dataset(dc, &tok);
  if (sft_max_length > 0) {
    const int64_t dropped = data::drop_longer_than(ds, sft_max_length, tok);
    if (dropped > 0)
      LOG_WARN("max_length {}: dropped {} sample(s) longer than that:\n{}", sft_max_length, dropped,
               data::format_report(ds));
    REFRACT_CHECK(!ds.samples.empty()) << "max_length " << sft_max_length << " drops every sample";
  }
  samples = std::move(ds.samples);
  REFRACT_CHECK(!samples.empty()) << "no usable training samples";
  order = std::make_unique<data::DataOrder>(static_cast<int64_t>(samples.size()), data::effective_data_seed(cfg.data));
  cache = std::make_unique<SampleCache>(samples, tok, opened.processor, cfg.data.num_workers);
  LOG_INFO("model {} ({} parameters, {} trainable), {} samples", cfg.model_name_or_path,
           model::count_parameters(m), model::count_parameters(m, true), samples.size());
}

TrainLoop::TrainLoop(const TrainingConfig& cfg, TrainSetup& setup, double samples_per_step)
    : cfg_(cfg), setup_(setup), samples_per_step_(samples_per_step) {
  total_steps_ = cfg.max_steps > 0
                     ? cfg.max_steps
                     : static_cast<int64_t>(std::ceil(cfg.num_train_epochs *
                                                      static_cast<double>(setup.samples.size()) / samples_per_step));
  REFRACT_CHECK(total_steps_ >= 1) << "the run has no steps (max_steps " << cfg.max_steps << ", num_train_epochs "
                                   << cfg.num_train_epochs << ")";
  std::vector<std::pair<std::string, torch::Tensor>> named, trainable_named;
  for (const auto& p : setup.model().named_parameters()) {
    named.emplace_back(p.key(), p.value());
    if (p.value().requires_grad()) trainable_.push_back(p.value()), trainable_named.emplace_back(p.key(), p.value());
  }
  OptimizerSettings os{cfg.learning_rate, cfg.weight_decay, cfg.adam_beta1, cfg.adam_beta2,
                       cfg.adam_epsilon};
  distributed::Dist& d = *setup.dist;
  if (cfg.optimizer_sharding && d.active()) {
    REFRACT_CHECK(!trainable_named.empty()) << "no trainable parameters";
    sharded_ = std::make_unique<distributed::ShardedOptimizer>(
        d, trainable_named, [os](const distributed::NamedParams& np) { return make_adamw(np, os); });
    LOG_INFO("optimizer_sharding: rank {} steps {} of {} trainable parameters", d.rank(), sharded_->owned_parameters(),
             model::count_parameters(setup.model(), true));
  } else {
    optimizer_ = make_adamw(named, os);
  }
  schedule_ = LrSchedule{cfg.lr_scheduler_type, cfg.learning_rate,
                         resolve_warmup_steps(cfg.warmup_steps, cfg.warmup_ratio, total_steps_),
                         total_steps_, cfg.num_decay_steps, cfg.min_lr_ratio};
  REFRACT_CHECK(schedule_.type != "warmup_stable_decay" ||
                schedule_.num_decay_steps <= total_steps_ - schedule_.warmup_steps)
      << "num_decay_steps " << cfg.num_decay_steps << " exceeds the " << total_steps_ - schedule_.warmup_steps
      << " steps after warmup (max_steps " << total_steps_ << ")";
  LoggerSettings ls;
  ls.output_dir = cfg.output_dir;
  ls.report_to = cfg.report_to;
  ls.logging_steps = cfg.logging_steps;
  ls.total_steps = total_steps_;
  ls.max_seconds = cfg.max_seconds;
  ls.log_completions = cfg.log_completions;
  ls.quiet = true;  // the loop prints progress and metrics on one line
  ls.write_files = d.is_main();
  logger_ = std::make_unique<TrainLogger>(ls);
  if (cfg.evaluating()) {
    // Loaded and validated now, so bad held-out data stops the run before its first step.
    data::DataConfig dc = cfg.data;
    dc.data_file_paths = cfg.eval_data_file_paths;
    dc.image_folders = cfg.eval_image_folders;
    dc.dataset_name = cfg.eval_dataset_name;
    dc.reward_method.clear();  // a per-training-file list; evaluation does not use it
    eval_data_ = std::make_unique<EvalDataset>(
        std::move(load_eval_datasets(dc, setup.opened, cfg.eval_task, cfg.eval_max_samples, false).front()));
    eval_settings_.batch_size = cfg.per_device_eval_batch_size;
    eval_settings_.max_new_tokens = cfg.eval_max_new_tokens;
    eval_settings_.coordinate_format = cfg.coordinate_format;
    eval_settings_.threads = static_cast<int>(std::max<int64_t>(1, cfg.threads));
    LOG_INFO("evaluating every {} steps on {} held-out samples ({})", cfg.effective_eval_steps(),
             eval_data_->samples.size(), eval_data_->task);
    if (!cfg.metric_for_best_model.empty()) {
      // HF accepts "accuracy" and "eval_accuracy"; refract logs "eval/accuracy" too.
      std::string name = cfg.metric_for_best_model;
      for (const char* prefix : {"eval/", "eval_"})
        if (name.rfind(prefix, 0) == 0) name = name.substr(5);
      const auto names = eval_metric_names(eval_data_->task);
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      REFRACT_CHECK(std::find(names.begin(), names.end(), name) != names.end())
          << "metric_for_best_model '" << cfg.metric_for_best_model << "' is not a metric of the "
          << eval_data_->task << " evaluation; its metrics: " << list;
      best_metric_key_ = "eval/" + name;
      greater_is_better_ =
          cfg.greater_is_better == "auto" ? metric_greater_is_better(name) : cfg.greater_is_better == "true";
    }
  }
  start_time_ = std::chrono::steady_clock::now();
}

RunSummary TrainLoop::run(const StepFn& train_step) {
  RunSummary sum;
  sum.output_dir = cfg_.output_dir;
  sum.first_step = start();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::map<std::string, double>> rewards_by_step;  // "reward", "rewards/<f>/mean"
  int64_t step = sum.first_step;
  for (; step <= total_steps_; ++step) {
    std::map<std::string, double> metrics = train_step(step);
    std::map<std::string, double> r;
    for (const auto& [k, v] : metrics)
      if (k == "reward" || (k.rfind("rewards/", 0) == 0 && k.size() > 13 && k.compare(k.size() - 5, 5, "/mean") == 0))
        r[k] = v;
    if (!r.empty()) rewards_by_step.push_back(r);
    const bool stop = out_of_time();
    end_step(step, metrics, stop || step == total_steps_);
    if (stop) {
      LOG_INFO("max_seconds reached after step {}", step);
      break;
    }
  }
  sum.last_step = std::min(step, total_steps_);
  sum.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!rewards_by_step.empty()) {
    // One step is a few prompts: compare windows of min(10, steps / 4) steps, not single steps.
    const size_t n = rewards_by_step.size(), k = std::max<size_t>(1, std::min<size_t>(10, n / 4));
    auto window = [&](size_t from, nlohmann::json* per_func) {
      std::map<std::string, double> acc;
      for (size_t i = from; i < from + k; ++i)
        for (const auto& [name, v] : rewards_by_step[i]) acc[name] += v / static_cast<double>(k);
      for (const auto& [name, v] : acc)
        if (name != "reward") (*per_func)[name.substr(8, name.size() - 13)] = v;  // rewards/<f>/mean
      return acc["reward"];
    };
    sum.first_reward = window(0, &sum.first_rewards);
    sum.last_reward = window(n - k, &sum.last_rewards);
  }
  sum.final_checkpoint = latest_checkpoint(cfg_.output_dir);
  if (cfg_.load_best_model_at_end && !best_checkpoint_.empty()) {
    // HF: the model the run hands back is the best checkpoint's; the latest stays on disk for
    // resuming.
    load_weights(best_checkpoint_);
    sum.final_checkpoint = best_checkpoint_;
    LOG_INFO("loaded the best checkpoint {} ({} = {})", best_checkpoint_, best_metric_key_, *best_metric_);
  }
  sum.log_history = logger_->log_history();
  return sum;
}

int64_t TrainLoop::start() {
  const std::string dir = resolve_resume(cfg_.resume_from_checkpoint, cfg_.output_dir);
  if (dir.empty()) return 1;
  // Weights first (the optimizer state refers to the same parameter tensors).
  load_weights(dir);
  TrainerState st;
  if (sharded_) {
    // optimizer.pt holds every parameter's state (whatever world size wrote it): each rank
    // loads it whole and keeps its share.
    std::unique_ptr<torch::optim::AdamW> full = sharded_->make_full();
    st = load_checkpoint(dir, full.get());
    sharded_->load_from_full(*full);
  } else {
    st = load_checkpoint(dir, optimizer_.get());
  }
  logger_->restore(st.log_history);
  best_metric_ = st.best_metric;
  best_checkpoint_ = st.best_model_checkpoint;
  num_tokens = st.extra.value("num_tokens", int64_t{0});
  first_step_ = st.global_step + 1;
  last_saved_ = st.global_step;
  LOG_INFO("resumed from {} at step {}", dir, st.global_step);
  return first_step_;
}

void TrainLoop::load_weights(const std::string& dir) {
  if (setup_.lora) {
    model::load_lora_weights_into(setup_.model(), dir);
    return;
  }
  model::Qwen2_5_VL loaded = model::load_pretrained(dir, setup_.device(), cfg_.torch_dtype);
  torch::NoGradGuard ng;
  auto src = loaded->named_parameters();
  for (auto& p : setup_.model().named_parameters()) p.value().copy_(src[p.key()]);
}

void TrainLoop::begin_step(int64_t step) {
  torch::manual_seed(static_cast<uint64_t>(data::derive_seed(cfg_.seed, step)));
  lr_ = schedule_.lr(step - 1);  // HF: the first optimizer step uses multiplier(0)
  if (sharded_) sharded_->set_learning_rate(lr_);
  else set_learning_rate(*optimizer_, lr_);
  comm_at_step_start_ = comm_;
}

double TrainLoop::optimizer_step() {
  // Each rank's loss is its share of the global loss, so the sum of the gradients is the
  // gradient one process with the global batch would have.
  distributed::all_reduce_gradients(*setup_.dist, trainable_, distributed::kDefaultBucketBytes, &comm_);
  const double norm = clip_grad_norm(trainable_, cfg_.max_grad_norm);
  if (sharded_) {
    sharded_->step(&comm_);
    sharded_->zero_grad();
  } else {
    optimizer_->step();
    optimizer_->zero_grad();
  }
  return norm;
}

double TrainLoop::epoch_at(int64_t step) const {
  return static_cast<double>(step) * samples_per_step_ /
         static_cast<double>(std::max<size_t>(1, setup_.samples.size()));
}

bool TrainLoop::out_of_time() const {
  if (cfg_.max_seconds <= 0) return false;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count() >=
         cfg_.max_seconds;
}

void TrainLoop::save(int64_t step) {
  if (step == last_saved_) return;
  // Sharded: every rank sends its AdamW state to rank 0 (a collective), which saves it whole.
  std::unique_ptr<torch::optim::AdamW> full = sharded_ ? sharded_->gather_full(lr_) : nullptr;
  if (!setup_.dist->is_main()) {
    last_saved_ = step;
    return;
  }
  TrainerState st;
  st.global_step = step;
  st.epoch = epoch_at(step);
  st.max_steps = total_steps_;
  st.logging_steps = cfg_.logging_steps;
  st.save_steps = cfg_.save_steps;
  st.log_history = logger_->log_history();
  st.data_state = {{"samples_seen", static_cast<int64_t>(step * samples_per_step_)},
                   {"num_samples", setup_.samples.size()}};
  st.scheduler = {{"type", schedule_.type}, {"last_step", step}, {"base_lr", schedule_.base_lr},
                  {"warmup_steps", schedule_.warmup_steps}, {"total_steps", total_steps_}};
  st.extra = {{"num_tokens", num_tokens}};
  // Only an evaluation of the weights being saved can name the best checkpoint, so
  // best_model_checkpoint always exists (HF may point at an unsaved step).
  if (!best_metric_key_.empty() && last_eval_step_ == step) {
    const double v = last_eval_.at(best_metric_key_);
    const bool better = std::isfinite(v) && (!best_metric_ || (greater_is_better_ ? v > *best_metric_ : v < *best_metric_));
    if (better) {
      best_metric_ = v;
      best_checkpoint_ = cfg_.output_dir + "/checkpoint-" + std::to_string(step);
    }
  }
  st.best_metric = best_metric_;
  st.best_model_checkpoint = best_checkpoint_;
  auto& m = setup_.model();
  auto save_weights = [&](const std::string& d) {
    if (!setup_.lora) return model::save_pretrained(m, d);
    // PEFT checkpoint (as HF Trainer writes it): adapter + tokenizer files.
    model::save_lora(m, *setup_.lora, d);
    model::copy_tokenizer_files(m.name_or_path, d);
  };
  const std::string dir = save_checkpoint(cfg_.output_dir, st, save_weights, sharded_ ? full.get() : optimizer_.get(),
                                          cfg_.save_total_limit);
  last_saved_ = step;
  LOG_INFO("saved {}", dir);
}

void TrainLoop::end_step(int64_t step, std::map<std::string, double> metrics, bool force_save) {
  metrics["learning_rate"] = lr_;
  if (setup_.dist->active()) {
    // Gradient all-reduce (+ parameter broadcast with sharding) of this rank in this step.
    metrics["time/communication"] = comm_.seconds - comm_at_step_start_.seconds;
    metrics["communication/bytes"] = static_cast<double>(comm_.bytes - comm_at_step_start_.bytes);
  }
  const bool logged = logger_->step(step, epoch_at(step), metrics);
  const std::string progress = logger_->progress(step, step - first_step_ + 1);
  if (!setup_.dist->is_main()) {
    // Only rank 0 reports progress and evaluates; every rank takes part in saving (sharded state).
    if (force_save || (cfg_.save_steps > 0 && step % cfg_.save_steps == 0)) save(step);
    return;
  }
  if (logged) {
    std::map<std::string, double> last;
    for (const auto& [k, v] : logger_->log_history().back().items())
      if (v.is_number() && k != "step" && k != "wall_time") last[k] = v.get<double>();
    LOG_INFO("{} | {}", progress, TrainLogger::format_metrics(last));
  } else {
    LOG_INFO("{}", progress);
  }
  if (eval_data_ && step % cfg_.effective_eval_steps() == 0) evaluate(step);
  if (force_save || (cfg_.save_steps > 0 && step % cfg_.save_steps == 0)) save(step);
}

void TrainLoop::evaluate(int64_t step) {
  // Generation samples from its own generators and restores the module's mode; torch's global
  // generator is put back all the same, so no later draw of the training can differ.
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const torch::Tensor rng = gen.get_state();
  const EvalResult r = train::evaluate(setup_.opened, *eval_data_, eval_settings_);
  gen.set_state(rng);
  write_eval_files(cfg_.output_dir + "/eval/step-" + std::to_string(step), r);
  std::map<std::string, double> m;
  for (const auto& [k, v] : r.metrics) m["eval/" + k] = v;
  m["eval/runtime"] = r.report["seconds"].get<double>();
  logger_->log_now(step, epoch_at(step), m);
  LOG_INFO("{} | {}", logger_->progress(step, step - first_step_ + 1), TrainLogger::format_metrics(m));
  last_eval_step_ = step;
  last_eval_ = std::move(m);
}

void pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad, torch::Tensor* ids,
               torch::Tensor* mask) {
  size_t t = 0;
  for (const auto& r : rows) t = std::max(t, r.size());
  *ids = torch::full({(int64_t)rows.size(), (int64_t)t}, pad, torch::kInt64);
  *mask = torch::zeros({(int64_t)rows.size(), (int64_t)t}, torch::kInt64);
  auto a = ids->accessor<int64_t, 2>();
  auto m = mask->accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) a[i][j] = rows[i][j], m[i][j] = 1;
}

}  // namespace refract::train
