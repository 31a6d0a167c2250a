#include "train/trainer_common.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <filesystem>

#include "common/check.h"
#include "common/log.h"
#include "data/load.h"
#include "data/rng.h"
#include "data/validate.h"
#include "train/optim.h"

namespace fs = std::filesystem;

namespace refract::train {

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device d(name);
    if (d.is_cuda()) {
      REFRACT_CHECK(torch::cuda::is_available()) << "device " << name << ": CUDA not available";
    }
    return d;
  } catch (const c10::Error& e) {
    REFRACT_FAIL() << "device: '" << name << "' is not a device (cpu, cuda, cuda:N)";
  }
}

int64_t DataOrder::at(int64_t k) {
  REFRACT_CHECK(n_ > 0) << "no training samples";
  const int64_t epoch = k / n_;
  if (epoch != epoch_) {
    perm_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    data::Rng rng(data::derive_seed(seed_, static_cast<uint64_t>(epoch)));
    for (int64_t i = n_ - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.below(i + 1)]);
    epoch_ = epoch;
  }
  return perm_[k % n_];
}

struct TrainSetup::Prefetcher {
  std::mutex mu;
  std::condition_variable cv;
  std::set<int64_t> in_flight;               // being encoded by some thread
  std::deque<std::pair<int64_t, bool>> queue;  // (index, with_response) waiting for a worker
  std::vector<std::thread> workers;
  bool stop = false;
};

const EncodedSample& TrainSetup::encode(int64_t index, bool with_response) {
  auto& slot = encoded[static_cast<size_t>(index)];
  if (!prefetcher) {
    if (!slot) slot = encode_sample(samples[index], *tokenizer, preprocess, with_response);
    return *slot;
  }
  Prefetcher& p = *prefetcher;
  std::unique_lock<std::mutex> lock(p.mu);
  p.cv.wait(lock, [&] { return slot.has_value() || !p.in_flight.count(index); });
  if (slot) return *slot;  // a filled slot is never written again
  p.in_flight.insert(index);
  lock.unlock();
  std::optional<EncodedSample> e;
  std::exception_ptr error;
  try {
    e = encode_sample(samples[index], *tokenizer, preprocess, with_response);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  if (e) slot = std::move(e);
  p.in_flight.erase(index);
  p.cv.notify_all();
  if (error) std::rethrow_exception(error);
  return *slot;
}

void TrainSetup::prefetch(const std::vector<int64_t>& indices, bool with_response) {
  if (!prefetcher) return;
  {
    std::lock_guard<std::mutex> lock(prefetcher->mu);
    for (int64_t i : indices) prefetcher->queue.emplace_back(i, with_response);
  }
  prefetcher->cv.notify_all();
}

TrainSetup::~TrainSetup() {
  if (!prefetcher) return;
  {
    std::lock_guard<std::mutex> lock(prefetcher->mu);
    prefetcher->stop = true;
  }
  prefetcher->cv.notify_all();
  for (auto& t : prefetcher->workers) t.join();
}

namespace {

// A worker encodes queued samples nobody has encoded or is encoding; errors are left for the
// step that needs the sample, which encodes it again and reports them.
void prefetch_worker(TrainSetup* s) {
  auto& p = *s->prefetcher;
  for (;;) {
    std::pair<int64_t, bool> job;
    {
      std::unique_lock<std::mutex> lock(p.mu);
      p.cv.wait(lock, [&] { return p.stop || !p.queue.empty(); });
      if (p.stop) return;
      job = p.queue.front();
      p.queue.pop_front();
      auto& slot = s->encoded[static_cast<size_t>(job.first)];
      if (slot || p.in_flight.count(job.first)) continue;
      p.in_flight.insert(job.first);
    }
    std::optional<EncodedSample> e;
    try {
      e = encode_sample(s->samples[job.first], *s->tokenizer, s->preprocess, job.second);
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(p.mu);
    if (e) s->encoded[static_cast<size_t>(job.first)] = std::move(e);
    p.in_flight.erase(job.first);
    p.cv.notify_all();
  }
}

}  // namespace

void start_prefetch_workers(TrainSetup& s, int64_t num_workers) {
  if (num_workers <= 0) return;
  s.prefetcher = std::make_unique<TrainSetup::Prefetcher>();
  for (int64_t i = 0; i < num_workers; ++i) s.prefetcher->workers.emplace_back(prefetch_worker, &s);
}

TrainSetup make_setup(const TrainingConfig& cfg_in) {
  TrainingConfig cfg = cfg_in;
  sync_data(cfg);
  TrainSetup s;
  at::set_num_threads(static_cast<int>(cfg.threads));
  s.device = parse_device(cfg.device);
  REFRACT_CHECK(!cfg.model_name_or_path.empty()) << "model_name_or_path is required";
  s.model = model::load_pretrained(cfg.model_name_or_path, s.device, cfg.torch_dtype);
  if (cfg.freeze_vision_modules) model::freeze_vision_modules(*s.model);
  if (cfg.freeze_aligner) model::freeze_aligner(*s.model);
  if (cfg.use_peft) {
    model::LoraConfig lc;
    lc.lora_r = cfg.lora_r;
    lc.lora_alpha = static_cast<double>(cfg.lora_alpha);
    lc.lora_dropout = cfg.lora_dropout;
    lc.lora_target_modules = cfg.lora_target_modules;
    // lora_A's random init comes from torch's generator: seed it (as HF Trainer's set_seed
    // does before model setup) so a run, and its resume, start from the same adapters.
    torch::manual_seed(static_cast<uint64_t>(cfg.seed));
    const auto adapted = model::apply_lora(*s.model, lc);
    REFRACT_CHECK(!adapted.empty()) << "lora_target_modules: no Linear layer of the model matches";
    // Only the adapters train (PEFT): the base, vision tower included, stays frozen.
    model::freeze_base(*s.model);
    s.lora = lc;
    LOG_INFO("LoRA r={} alpha={} dropout={} on {} modules", lc.lora_r, lc.lora_alpha, lc.lora_dropout,
             adapted.size());
  }
  const std::string tok_path =
      cfg.data.tokenizer_path.empty() ? cfg.model_name_or_path : cfg.data.tokenizer_path;
  s.tokenizer = std::make_unique<text::Tokenizer>(text::Tokenizer::from_file(tok_path));
  s.eos_id = s.tokenizer->eos_token_id().value_or(static_cast<int32_t>(s.model->config().eos_token_id));
  s.pad_id = s.tokenizer->pad_token_id().value_or(static_cast<int32_t>(s.eos_id));
  s.preprocess.min_pixels = cfg.data.min_pixels;
  s.preprocess.max_pixels = cfg.data.max_pixels;
  s.preprocess.patch_size = s.model->config().vision_config.patch_size;
  s.preprocess.merge_size = s.model->config().vision_config.spatial_merge_size;
  s.preprocess.temporal_patch_size = s.model->config().vision_config.temporal_patch_size;
  // The same check as `refract data check`: images, boxes, prompt lengths; rejected samples
  // stop the run (on_bad_sample=error) or are reported and skipped, never dropped silently.
  data::DataConfig dc = cfg.data;
  dc.min_pixels = s.preprocess.min_pixels;
  dc.max_pixels = s.preprocess.max_pixels;
  data::Dataset ds = data::prepare_dataset(dc, s.tokenizer.get());
  s.samples = std::move(ds.samples);
  REFRACT_CHECK(!s.samples.empty()) << "no usable training samples";
  s.encoded.resize(s.samples.size());
  LOG_INFO("model {} ({} parameters, {} trainable), {} samples", cfg.model_name_or_path,
           model::count_parameters(*s.model), model::count_parameters(*s.model, true),
           s.samples.size());
  return s;
}

TrainLoop::TrainLoop(const TrainingConfig& cfg, TrainSetup& setup, int64_t total_steps,
                     double samples_per_step)
    : cfg_(cfg), setup_(setup), total_steps_(total_steps), samples_per_step_(samples_per_step) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : setup.model->named_parameters()) {
    named.emplace_back(p.key(), p.value());
    if (p.value().requires_grad()) trainable_.push_back(p.value());
  }
  OptimizerSettings os{cfg.learning_rate, cfg.weight_decay, cfg.adam_beta1, cfg.adam_beta2,
                       cfg.adam_epsilon};
  optimizer_ = make_adamw(named, os);
  schedule_ = LrSchedule{cfg.lr_scheduler_type, cfg.learning_rate,
                         resolve_warmup_steps(cfg.warmup_steps, cfg.warmup_ratio, total_steps),
                         total_steps, cfg.num_decay_steps, cfg.min_lr_ratio};
  REFRACT_CHECK(schedule_.type != "warmup_stable_decay" ||
                schedule_.num_decay_steps <= total_steps - schedule_.warmup_steps)
      << "num_decay_steps " << cfg.num_decay_steps << " exceeds the " << total_steps - schedule_.warmup_steps
      << " steps after warmup (max_steps " << total_steps << ")";
  LoggerSettings ls;
  ls.output_dir = cfg.output_dir;
  ls.report_to = cfg.report_to;
  ls.logging_steps = cfg.logging_steps;
  ls.total_steps = total_steps;
  ls.log_completions = cfg.log_completions;
  ls.quiet = true;  // the loop prints progress and metrics on one line
  logger_ = std::make_unique<TrainLogger>(ls);
  start_time_ = std::chrono::steady_clock::now();
}

int64_t TrainLoop::start() {
  const std::string dir = resolve_resume(cfg_.resume_from_checkpoint, cfg_.output_dir);
  if (dir.empty()) return 1;
  // Weights first (the optimizer state refers to the same parameter tensors).
  if (setup_.lora) {
    model::load_lora_weights_into(*setup_.model, dir);
  } else {
    model::Qwen2_5_VL loaded = model::load_pretrained(dir, setup_.device, cfg_.torch_dtype);
    torch::NoGradGuard ng;
    auto src = loaded->named_parameters();
    for (auto& p : setup_.model->named_parameters()) p.value().copy_(src[p.key()]);
  }
  TrainerState st = load_checkpoint(dir, optimizer_.get());
  logger_->restore(st.log_history);
  if (set_extra) set_extra(st.extra);
  first_step_ = st.global_step + 1;
  last_saved_ = st.global_step;
  LOG_INFO("resumed from {} at step {}", dir, st.global_step);
  return first_step_;
}

void TrainLoop::begin_step(int64_t step) {
  torch::manual_seed(static_cast<uint64_t>(data::derive_seed(cfg_.seed, step)));
  lr_ = schedule_.lr(step - 1);  // HF: the first optimizer step uses multiplier(0)
  set_learning_rate(*optimizer_, lr_);
}

double TrainLoop::optimizer_step() {
  const double norm = clip_grad_norm(trainable_, cfg_.max_grad_norm);
  optimizer_->step();
  optimizer_->zero_grad();
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
  if (get_extra) st.extra = get_extra();
  auto& m = *setup_.model;
  auto save_weights = [&](const std::string& d) {
    if (!setup_.lora) return model::save_pretrained(m, d);
    // PEFT checkpoint (as HF Trainer writes it): adapter + tokenizer files.
    model::save_lora(m, *setup_.lora, d);
    model::copy_tokenizer_files(m.name_or_path, d);
  };
  const std::string dir = save_checkpoint(
      cfg_.output_dir, st, save_weights,
      optimizer_.get(), cfg_.save_total_limit);
  last_saved_ = step;
  LOG_INFO("saved {}", dir);
}

void TrainLoop::end_step(int64_t step, std::map<std::string, double> metrics, bool force_save) {
  metrics["learning_rate"] = lr_;
  const bool logged = logger_->step(step, epoch_at(step), metrics);
  const std::string progress = logger_->progress(step, step - first_step_ + 1);
  if (logged) {
    std::map<std::string, double> last;
    for (const auto& [k, v] : logger_->log_history().back().items())
      if (v.is_number() && k != "step") last[k] = v.get<double>();
    LOG_INFO("{} | {}", progress, TrainLogger::format_metrics(last));
  } else {
    LOG_INFO("{}", progress);
  }
  if (force_save || (cfg_.save_steps > 0 && step % cfg_.save_steps == 0)) save(step);
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
