#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"

namespace fs = std::filesystem;

namespace refract::train {

namespace {

constexpr const char* kPrefix = "checkpoint-";

// Step of a complete checkpoint directory name, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string rest = name.substr(std::string(kPrefix).size());
  if (rest.empty() || !std::all_of(rest.begin(), rest.end(), ::isdigit)) return -1;
  return std::stoll(rest);
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Removes checkpoint-*.tmp-<pid> directories left by processes that no longer run.
void remove_stale_temporaries(const std::string& output_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    const std::string name = e.path().filename().string();
    const auto pos = name.find(".tmp-");
    if (name.rfind(kPrefix, 0) != 0 || pos == std::string::npos) continue;
    const long pid = std::strtol(name.c_str() + pos + 5, nullptr, 10);
    if (pid == static_cast<long>(::getpid())) continue;
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0) continue;  // still alive
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace

nlohmann::json to_json(const TrainerState& s) {
  // ref: transformers TrainerState.save_to_json (field names users' tools read).
  return {{"global_step", s.global_step},
          {"epoch", s.epoch},
          {"max_steps", s.max_steps},
          {"logging_steps", s.logging_steps},
          {"save_steps", s.save_steps},
          {"log_history", s.log_history},
          {"best_metric", s.best_metric ? nlohmann::json(*s.best_metric) : nlohmann::json()},
          {"best_model_checkpoint",
           s.best_model_checkpoint.empty() ? nlohmann::json() : nlohmann::json(s.best_model_checkpoint)},
          {"is_world_process_zero", true},
          {"refract_data_state", s.data_state},
          {"refract_scheduler", s.scheduler},
          {"refract_extra", s.extra}};
}

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  try {
    s.global_step = j.at("global_step").get<int64_t>();
    s.epoch = j.value("epoch", 0.0);
    s.max_steps = j.value("max_steps", int64_t{0});
    s.logging_steps = j.value("logging_steps", int64_t{0});
    s.save_steps = j.value("save_steps", int64_t{0});
    s.log_history = j.value("log_history", nlohmann::json::array());
    s.data_state = j.value("refract_data_state", nlohmann::json::object());
    s.scheduler = j.value("refract_scheduler", nlohmann::json::object());
    s.extra = j.value("refract_extra", nlohmann::json::object());
    if (j.contains("best_metric") && j["best_metric"].is_number()) s.best_metric = j["best_metric"].get<double>();
    if (j.contains("best_model_checkpoint") && j["best_model_checkpoint"].is_string())
      s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    REFRACT_FAIL() << where << ": invalid trainer state: " << e.what();
  }
  return s;
}

std::string save_checkpoint(const std::string& output_dir, const TrainerState& state,
                            const std::function<void(const std::string&)>& write_model,
                            torch::optim::Optimizer* optimizer, int64_t save_total_limit) {
  fs::create_directories(output_dir);
  remove_stale_temporaries(output_dir);
  const std::string final_dir = output_dir + "/" + kPrefix + std::to_string(state.global_step);
  const std::string tmp = final_dir + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);

  if (write_model) write_model(tmp);
  if (optimizer) {
    torch::save(*optimizer, tmp + "/optimizer.pt");
    fsync_path(tmp + "/optimizer.pt");
  }
  {
    torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
    torch::save(rng, tmp + "/rng_state.pt");
    fsync_path(tmp + "/rng_state.pt");
  }
  write_file_atomic(tmp + "/scheduler.json", state.scheduler.dump(2));
  // trainer_state.json last: its presence marks the directory as complete.
  write_file_atomic(tmp + "/trainer_state.json", to_json(state).dump(2));
  for (const auto& e : fs::directory_iterator(tmp))
    if (e.is_regular_file()) fsync_path(e.path().string());
  fsync_directory(tmp);

  // An older checkpoint of the same step (e.g. a re-run) is replaced: move it aside first so
  // that at every instant one complete copy exists.
  if (fs::exists(final_dir)) {
    const std::string old = final_dir + ".tmp-" + std::to_string(::getpid()) + "-old";
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_directory(output_dir);

  // Renamed first (atomic), so a kill during the deletion never leaves a directory that still
  // looks complete but misses files.
  for (const auto& doomed_dir : checkpoints_to_delete(list_checkpoints(output_dir), save_total_limit,
                                                      state.best_model_checkpoint)) {
    const std::string doomed = doomed_dir + ".tmp-" + std::to_string(::getpid()) + "-del";
    fs::rename(doomed_dir, doomed, ec);
    if (!ec) fs::remove_all(doomed, ec);
  }
  return final_dir;
}

std::vector<std::string> checkpoints_to_delete(const std::vector<std::string>& sorted, int64_t save_total_limit,
                                               const std::string& best) {
  if (save_total_limit <= 0) return {};
  // ref: transformers Trainer._sorted_checkpoints / _rotate_checkpoints: the best checkpoint is
  // bubbled to the second-newest place (the newest stays last, for resuming), then the oldest
  // beyond the limit go; a limit of 1 becomes 2 when the newest is not the best.
  std::vector<std::string> all = sorted;
  const auto name_of = [](const std::string& p) { return fs::path(p).filename().string(); };
  const std::string best_name = best.empty() ? "" : name_of(best);
  if (!best_name.empty()) {
    for (size_t i = 0; i < all.size(); ++i) {
      if (name_of(all[i]) != best_name) continue;
      for (size_t j = i; j + 2 < all.size(); ++j) std::swap(all[j], all[j + 1]);
      break;
    }
  }
  size_t limit = static_cast<size_t>(save_total_limit);
  if (!best_name.empty() && limit == 1 && !all.empty() && name_of(all.back()) != best_name) limit = 2;
  std::vector<std::string> out;
  for (size_t i = 0; i + limit < all.size(); ++i) out.push_back(all[i]);
  return out;
}

std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    if (!e.is_directory()) continue;
    const int64_t step = step_of(e.path().filename().string());
    if (step < 0 || !fs::exists(e.path() / "trainer_state.json")) continue;
    found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string latest_checkpoint(const std::string& output_dir) {
  auto all = list_checkpoints(output_dir);
  return all.empty() ? "" : all.back();
}

std::string resolve_resume(const std::string& resume, const std::string& output_dir) {
  if (resume.empty() || resume == "false") return "";
  if (resume == "true") {
    std::string dir = latest_checkpoint(output_dir);
    REFRACT_CHECK(!dir.empty()) << "resume_from_checkpoint=true but " << output_dir
                                << " holds no complete checkpoint-<step>/";
    return dir;
  }
  REFRACT_CHECK(fs::exists(fs::path(resume) / "trainer_state.json"))
      << "resume_from_checkpoint: " << resume << " is not a complete checkpoint (no trainer_state.json)";
  return resume;
}

TrainerState load_checkpoint(const std::string& dir, torch::optim::Optimizer* optimizer) {
  const std::string path = dir + "/trainer_state.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    REFRACT_FAIL() << path << ": invalid JSON: " << e.what();
  }
  TrainerState s = trainer_state_from_json(j, path);
  if (optimizer) {
    REFRACT_CHECK(fs::exists(dir + "/optimizer.pt")) << dir << ": optimizer.pt missing";
    torch::load(*optimizer, dir + "/optimizer.pt");
  }
  if (fs::exists(dir + "/rng_state.pt")) {
    torch::Tensor rng;
    torch::load(rng, dir + "/rng_state.pt");
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng);
  }
  return s;
}

}  // namespace refract::train
