// Checkpoints that never lose work: output_dir/checkpoint-<step>/ holding the model (HF layout)
// or the PEFT adapter, optimizer.pt, scheduler.json, rng_state.pt and trainer_state.json (HF
// Trainer layout, with log_history). Everything is written into checkpoint-<step>.tmp-<pid>/,
// fsynced, then renamed: a process killed at any moment leaves the previous checkpoints intact
// and at worst a .tmp- directory that the next save removes.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace refract::train {

struct TrainerState {
  int64_t global_step = 0;
  double epoch = 0;
  int64_t max_steps = 0;
  int64_t logging_steps = 0;
  int64_t save_steps = 0;
  nlohmann::json log_history = nlohmann::json::array();
  nlohmann::json data_state = nlohmann::json::object();  // loader position (epoch, index, ...)
  nlohmann::json scheduler = nlohmann::json::object();   // {"last_step", "type", ...}
  nlohmann::json extra = nlohmann::json::object();       // trainer-specific (e.g. buffered round)
  // HF: the best metric_for_best_model value so far and the checkpoint that scored it.
  std::optional<double> best_metric;
  std::string best_model_checkpoint;
};

nlohmann::json to_json(const TrainerState& s);
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& where);

// Writes a checkpoint for `state.global_step`. `write_model(dir)` writes the weights into dir
// (save_pretrained or save_lora). Old checkpoints beyond save_total_limit (> 0) are deleted
// after the new one is complete, never state.best_model_checkpoint (HF's rotation: the best
// counts as one of the kept, and with a limit of 1 the latest is kept beside it).
// Returns the final directory.
std::string save_checkpoint(const std::string& output_dir, const TrainerState& state,
                            const std::function<void(const std::string&)>& write_model,
                            torch::optim::Optimizer* optimizer, int64_t save_total_limit);

// The checkpoints save_total_limit deletes from `all` (oldest step first, complete ones).
std::vector<std::string> checkpoints_to_delete(const std::vector<std::string>& all, int64_t save_total_limit,
                                               const std::string& best_model_checkpoint);

// Complete checkpoints (trainer_state.json present, no .tmp- suffix), oldest step first.
std::vector<std::string> list_checkpoints(const std::string& output_dir);
// "" when none.
std::string latest_checkpoint(const std::string& output_dir);
// resume_from_checkpoint: "" -> "", "true" -> latest in output_dir (error if none), else the path.
std::string resolve_resume(const std::string& resume_from_checkpoint, const std::string& output_dir);

// Reads trainer_state.json; restores the optimizer (if given) and the torch RNG.
TrainerState load_checkpoint(const std::string& dir, torch::optim::Optimizer* optimizer);

}  // namespace refract::train
