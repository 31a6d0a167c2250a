// What the dashboard page shows, as JSON built from the run files (the HTTP endpoints return
// these; `--render` draws from them too). No torch.
//
//   runs_json()                -> {"runs": [{"id", "name", "dir", "metrics", "completions", "evals": [..]}]}
//   metrics_json(run)          -> {"keys": [..], "entries": [{"step", "wall_time", metric: value}], "errors"}
//   rollouts_json(run, step)   -> {"step", "steps": [{"step", "n"}], "groups": [...]} (docs/dashboard.md)
//   eval_json(run, name)       -> {"name", "task", "summary", "samples": [...]}
//
// Boxes are read from completions with the rewards' own readers (rewards/predicted_boxes.h),
// so what is drawn is what was scored.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/check.h"
#include "dashboard/runs.h"

namespace refract::dashboard {

// A request the dashboard refuses: HTTP status and the reason (the body says it).
struct RequestError : Error {
  RequestError(int status, const std::string& message) : Error(message), status(status) {}
  int status;
};

struct FileReply {
  std::string bytes;
  std::string content_type;
};

class Dashboard {
 public:
  explicit Dashboard(std::vector<Run> runs);

  const std::vector<Run>& runs() const { return runs_; }
  nlohmann::json runs_json();
  nlohmann::json metrics_json(int64_t run);
  // step: the rollouts logged at that step; nullopt = the latest step.
  nlohmann::json rollouts_json(int64_t run, std::optional<int64_t> step);
  nlohmann::json eval_json(int64_t run, const std::string& name);

  // An image named by the run's logs, or any image file inside the run's directory; decoded
  // first, so nothing but an image is ever sent. 403 for any other path.
  FileReply image(int64_t run, const std::string& path);
  // A file inside the run's directory (realpath-confined: no "..", no symlink out).
  FileReply file(int64_t run, const std::string& relative_path);

  // The URL the page uses for an image path of a run.
  static std::string image_url(int64_t run, const std::string& path);

 private:
  const Run& run_at(int64_t run) const;
  void allow_image(int64_t run, const std::string& path);

  std::vector<Run> runs_;
  JsonlCache cache_;
  std::mutex mu_;
  std::vector<std::set<std::string>> logged_images_;  // per run: image paths its logs name
};

// %-encoding of a query value.
std::string url_encode(const std::string& s);

}  // namespace refract::dashboard
