// What a training run shows: a progress line (step, rate, ETA), the TRL metric names on one
// readable line every logging_steps, metrics.jsonl, TensorBoard scalars, completions.jsonl.
// No torch. The log history is kept in memory and also goes into trainer_state.json, so a
// resumed run rewrites metrics.jsonl exactly as an uninterrupted run would have.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace refract::train {

struct LoggerSettings {
  std::string output_dir;
  std::vector<std::string> report_to = {"tensorboard"};
  int64_t logging_steps = 10;
  int64_t total_steps = 0;
  double max_seconds = 0;  // > 0: the run also ends after this wall time (the progress line follows it)
  bool log_completions = false;
  bool quiet = false;  // no stderr lines (tests)
  bool write_files = true;  // false: history in memory only (data-parallel ranks other than 0)
};

class TrainLogger {
 public:
  explicit TrainLogger(LoggerSettings s);
  ~TrainLogger();

  // Restores the history of a resumed run (trainer_state.json log_history).
  void restore(const nlohmann::json& log_history);
  const nlohmann::json& log_history() const { return history_; }

  // Accumulates one step's metrics; every logging_steps (and at the last step) the means of the
  // accumulated values are written as one entry {"step", "epoch", metrics...}.
  // Returns true when an entry was written.
  bool step(int64_t global_step, double epoch, const std::map<std::string, double>& metrics);
  // Forces an entry now (e.g. evaluation results).
  void log_now(int64_t global_step, double epoch, const std::map<std::string, double>& metrics);

  // One line per sampled completion: {"step", "prompt", "completion", "rewards": {...}, ...}.
  void log_completion(const nlohmann::json& record);

  // "step 12/100 (12%) | 1.23 s/it | ETA 0:01:48" (elapsed measured since construction); when
  // max_seconds will end the run before total_steps: "step 12 | 30/240 s (12%) | ... | ETA".
  std::string progress(int64_t global_step, int64_t steps_this_run) const;
  static std::string format_metrics(const std::map<std::string, double>& m);

 private:
  void write_entry(const nlohmann::json& entry);
  LoggerSettings s_;
  nlohmann::json history_ = nlohmann::json::array();
  std::map<std::string, std::pair<double, int64_t>> acc_;  // sum, count
  std::chrono::steady_clock::time_point start_;
  int completions_fd_ = -1;
  struct Tb;
  std::unique_ptr<Tb> tb_;
};

}  // namespace refract::train
