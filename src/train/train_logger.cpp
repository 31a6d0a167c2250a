#include "train/train_logger.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"

#if __has_include("io/tensorboard.h")
#include "io/tensorboard.h"
#define REFRACT_HAS_TENSORBOARD 1
#endif

namespace refract::train {

struct TrainLogger::Tb {
#ifdef REFRACT_HAS_TENSORBOARD
  std::unique_ptr<io::TensorBoardWriter> writer;
#endif
};

TrainLogger::TrainLogger(LoggerSettings s)
    : s_(std::move(s)), start_(std::chrono::steady_clock::now()), tb_(std::make_unique<Tb>()) {
  if (!s_.write_files) return;
  std::filesystem::create_directories(s_.output_dir);
  const bool tb = std::find(s_.report_to.begin(), s_.report_to.end(), "tensorboard") !=
                  s_.report_to.end();
#ifdef REFRACT_HAS_TENSORBOARD
  if (tb) tb_->writer = std::make_unique<io::TensorBoardWriter>(s_.output_dir + "/runs");
#else
  if (tb && !s_.quiet) LOG_WARN("TensorBoard writer not built in; metrics go to metrics.jsonl only");
#endif
  if (s_.log_completions) {
    const std::string path = s_.output_dir + "/completions.jsonl";
    completions_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    REFRACT_CHECK(completions_fd_ >= 0) << "cannot open " << path;
  }
}

TrainLogger::~TrainLogger() {
  if (completions_fd_ >= 0) ::close(completions_fd_);
#ifdef REFRACT_HAS_TENSORBOARD
  if (tb_ && tb_->writer) tb_->writer->flush();
#endif
}

void TrainLogger::restore(const nlohmann::json& log_history) {
  history_ = log_history.is_array() ? log_history : nlohmann::json::array();
  std::string text;
  for (const auto& e : history_) text += e.dump() + "\n";
  if (s_.write_files) write_file_atomic(s_.output_dir + "/metrics.jsonl", text);
}

bool TrainLogger::step(int64_t global_step, double epoch,
                       const std::map<std::string, double>& metrics) {
  for (const auto& [k, v] : metrics) {
    if (!std::isfinite(v)) continue;
    auto& a = acc_[k];
    a.first += v;
    a.second += 1;
  }
  const bool due = global_step % s_.logging_steps == 0 || global_step == s_.total_steps;
  if (!due) return false;
  std::map<std::string, double> means;
  for (const auto& [k, a] : acc_) means[k] = a.first / static_cast<double>(a.second);
  // Cumulative counters are reported at their current value, not averaged.
  if (auto it = metrics.find("num_tokens"); it != metrics.end()) means["num_tokens"] = it->second;
  acc_.clear();
  log_now(global_step, epoch, means);
  return true;
}

void TrainLogger::log_now(int64_t global_step, double epoch,
                          const std::map<std::string, double>& metrics) {
  nlohmann::json e = nlohmann::json::object();
  for (const auto& [k, v] : metrics) e[k] = v;
  e["epoch"] = epoch;
  e["step"] = global_step;
  // Seconds since the Unix epoch (TensorBoard's event wall_time): `refract dashboard` plots
  // against it. A resumed run's entries keep the time they were first written.
  e["wall_time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  write_entry(e);
  if (!s_.quiet) LOG_INFO("{} | {}", progress(global_step, 0), format_metrics(metrics));
}

void TrainLogger::write_entry(const nlohmann::json& entry) {
  history_.push_back(entry);
  if (!s_.write_files) return;
  // Rewritten whole (small) so the file is never torn and always equals log_history.
  std::string text;
  for (const auto& e : history_) text += e.dump() + "\n";
  write_file_atomic(s_.output_dir + "/metrics.jsonl", text);
#ifdef REFRACT_HAS_TENSORBOARD
  if (tb_->writer) {
    const int64_t step = entry["step"].get<int64_t>();
    for (const auto& [k, v] : entry.items())
      // HF's tags: train/<metric>, and eval/<metric> for held-out evaluation.
      if (k != "step" && k != "wall_time" && v.is_number())
        tb_->writer->add_scalar(k.rfind("eval/", 0) == 0 ? k : "train/" + k, v.get<double>(), step);
    tb_->writer->flush();
  }
#endif
}

void TrainLogger::log_completion(const nlohmann::json& record) {
  if (completions_fd_ < 0) return;
  const std::string line = record.dump() + "\n";
  // One write() per line on an O_APPEND descriptor: lines never interleave or tear.
  ssize_t n = ::write(completions_fd_, line.data(), line.size());
  (void)n;
}

std::string TrainLogger::progress(int64_t global_step, int64_t steps_this_run) const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char buf[160];
  const int64_t total = std::max<int64_t>(1, s_.total_steps);
  const double pct = 100.0 * static_cast<double>(global_step) / static_cast<double>(total);
  if (steps_this_run > 0) {
    const double rate = elapsed / static_cast<double>(steps_this_run);
    const double steps_left_seconds = rate * static_cast<double>(total - global_step);
    if (s_.max_seconds > 0 && s_.max_seconds - elapsed < steps_left_seconds) {
      // The wall-time bound ends the run first: show progress against it, not max_steps.
      const double left = std::max(0.0, s_.max_seconds - elapsed);
      const int64_t eta = static_cast<int64_t>(left);
      std::snprintf(buf, sizeof buf, "step %lld | %.0f/%.0f s (%.0f%%) | %.2f s/it | ETA %lld:%02lld:%02lld",
                    (long long)global_step, elapsed, s_.max_seconds, 100.0 * std::min(1.0, elapsed / s_.max_seconds),
                    rate, (long long)(eta / 3600), (long long)(eta / 60 % 60), (long long)(eta % 60));
      return buf;
    }
    const int64_t eta = static_cast<int64_t>(steps_left_seconds);
    std::snprintf(buf, sizeof buf, "step %lld/%lld (%.0f%%) | %.2f s/it | ETA %lld:%02lld:%02lld",
                  (long long)global_step, (long long)total, pct, rate, (long long)(eta / 3600),
                  (long long)(eta / 60 % 60), (long long)(eta % 60));
  } else {
    std::snprintf(buf, sizeof buf, "step %lld/%lld (%.0f%%)", (long long)global_step,
                  (long long)total, pct);
  }
  return buf;
}

std::string TrainLogger::format_metrics(const std::map<std::string, double>& m) {
  // The headline metrics first, in TRL's order; the rest alphabetically.
  static const char* kFirst[] = {"loss", "reward", "reward_std", "grad_norm", "learning_rate",
                                 "mean_token_accuracy", "kl", "entropy"};
  std::string out;
  auto add = [&](const std::string& k, double v) {
    // Only the number goes through the fixed buffer: a name (e.g. external:<path>/mean) has
    // any length.
    char buf[32];
    const double a = std::abs(v);
    if (v == 0 || (a >= 1e-3 && a < 1e5))
      std::snprintf(buf, sizeof buf, "%.4g", v);
    else
      std::snprintf(buf, sizeof buf, "%.3e", v);
    out += (out.empty() ? "" : " ") + k + "=" + buf;
  };
  for (const char* k : kFirst)
    if (auto it = m.find(k); it != m.end()) add(k, it->second);
  for (const auto& [k, v] : m)
    if (std::find_if(std::begin(kFirst), std::end(kFirst), [&](const char* f) { return k == f; }) ==
        std::end(kFirst))
      add(k, v);
  return out;
}

}  // namespace refract::train
