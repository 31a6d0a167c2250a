// The run directories a dashboard reads: which runs they hold, the files each run has, and the
// one rule for which files may be read at all. Read-only; no torch.
//
// A run directory is what `refract grpo|sft` writes into output_dir (metrics.jsonl,
// completions.jsonl, eval/step-N/), what `refract eval` writes (predictions.jsonl +
// references.jsonl + eval.json, or one such directory per dataset), or the directory
// `refract demo` writes (its runs grpo/, sft_continued/, ... one level down, and its
// predictions_<model>_<split>.jsonl at the top).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace refract::dashboard {

// One set of evaluated samples (a `refract eval` directory, a trainer's eval/step-N, a demo
// predictions file).
struct EvalSet {
  std::string name;   // shown and used in URLs: "eval/step-10", "predictions_grpo_in_domain"
  std::string kind;   // "eval" (predictions + references + eval.json) | "demo" (one JSONL)
  std::string path;   // the directory (eval) or the file (demo)
};

struct Run {
  std::string name;   // as shown: the directory's name, "<given>/<sub>" for runs found inside
  std::string dir;    // the directory as given (plus the sub-directory)
  std::string root;   // realpath of the directory given on the command line: reads stay inside
};

// The runs in the directories given by --runs. A path that is not a directory, or a directory
// holding no run files (here or one level down), is an error naming it.
std::vector<Run> discover_runs(const std::vector<std::string>& dirs);

// The run's evaluation sets (scanned on every call: a training run adds eval/step-N as it goes).
std::vector<EvalSet> find_eval_sets(const Run& run);

// realpath of `path` if it lies inside `root` (a realpath), after resolving every symlink and
// "..": nullopt otherwise, or when it does not exist. The one confinement check.
std::optional<std::string> confined_path(const std::string& root, const std::string& path);

// JSON lines of a file, re-read only when the file changed (size or mtime); an append-only file
// (completions.jsonl) is read on from where the last read ended. A line that is not a JSON
// object is reported (file:line) in `errors` and skipped for display; a last line without its
// newline is a write in progress and waits for the next read.
class JsonlCache {
 public:
  struct Lines {
    std::vector<nlohmann::json> lines;
    std::vector<std::string> errors;
  };
  // Empty when the file does not exist.
  std::shared_ptr<const Lines> read(const std::string& path, bool append_only);

 private:
  struct Entry {
    int64_t size = -1;
    int64_t mtime_ns = -1;
    int64_t offset = 0;      // bytes consumed (complete lines)
    int64_t line_no = 0;
    std::shared_ptr<Lines> data;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace refract::dashboard
