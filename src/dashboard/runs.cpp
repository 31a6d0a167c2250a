#include "dashboard/runs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/check.h"

namespace fs = std::filesystem;

namespace refract::dashboard {
namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Files that make a directory a run.
bool has_run_files(const fs::path& dir) {
  if (is_file(dir / "metrics.jsonl") || is_file(dir / "completions.jsonl") || is_file(dir / "eval.json") ||
      is_file(dir / "predictions.jsonl"))
    return true;
  std::error_code ec;
  if (fs::is_directory(dir / "eval", ec)) return true;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("predictions_", 0) == 0 && e.path().extension() == ".jsonl") return true;
  }
  return false;
}

std::vector<fs::path> sorted_subdirs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

bool is_eval_dir(const fs::path& d) {
  return is_file(d / "predictions.jsonl") && is_file(d / "references.jsonl");
}

}  // namespace

std::optional<std::string> confined_path(const std::string& root, const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return std::nullopt;
  std::string r(real);
  std::free(real);
  if (r == root || (r.size() > root.size() && r.compare(0, root.size(), root) == 0 && r[root.size()] == '/'))
    return r;
  return std::nullopt;
}

std::vector<Run> discover_runs(const std::vector<std::string>& dirs) {
  REFRACT_CHECK(!dirs.empty()) << "runs: give at least one run directory (--runs DIR [DIR...])";
  std::vector<Run> runs;
  for (const auto& given : dirs) {
    std::error_code ec;
    REFRACT_CHECK(fs::exists(given, ec)) << "runs: " << given << " does not exist";
    REFRACT_CHECK(fs::is_directory(given, ec)) << "runs: " << given << " is not a directory";
    char* real = ::realpath(given.c_str(), nullptr);
    REFRACT_CHECK(real) << "runs: cannot resolve " << given;
    const std::string root(real);
    std::free(real);
    std::string shown = fs::path(given).lexically_normal().filename().string();
    if (shown.empty() || shown == ".") shown = fs::path(root).filename().string();
    const size_t before = runs.size();
    if (has_run_files(given)) runs.push_back({shown, given, root});
    // Runs one level down (the demo's output directory: grpo/, sft_continued/, ...).
    for (const auto& sub : sorted_subdirs(given)) {
      const std::string n = sub.filename().string();
      if (n == "eval" || n == "runs" || n.rfind("checkpoint-", 0) == 0 || is_eval_dir(sub)) continue;
      if (is_file(sub / "metrics.jsonl") || is_file(sub / "completions.jsonl"))
        runs.push_back({shown + "/" + n, sub.string(), root});
    }
    REFRACT_CHECK(runs.size() > before)
        << "runs: " << given << " holds no run files (metrics.jsonl, completions.jsonl, eval/, "
        << "predictions.jsonl + references.jsonl, predictions_*.jsonl), nor a run directory one level down. "
        << "A training run writes metrics.jsonl at its first logging step.";
  }
  return runs;
}

std::vector<EvalSet> find_eval_sets(const Run& run) {
  std::vector<EvalSet> out;
  const fs::path dir(run.dir);
  if (is_eval_dir(dir)) out.push_back({"eval", "eval", dir.string()});
  // Demo predictions files at the top.
  std::vector<fs::path> demo;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("predictions_", 0) == 0 && e.path().extension() == ".jsonl" && is_file(e.path()))
      demo.push_back(e.path());
  }
  std::sort(demo.begin(), demo.end());
  for (const auto& p : demo) out.push_back({p.stem().string(), "demo", p.string()});
  // `refract eval` with several datasets (one directory each), and a trainer's eval/step-N.
  for (const auto& sub : sorted_subdirs(dir)) {
    const std::string n = sub.filename().string();
    if (is_eval_dir(sub)) out.push_back({n, "eval", sub.string()});
    if (n != "eval") continue;
    std::vector<std::pair<int64_t, fs::path>> steps;
    for (const auto& s : sorted_subdirs(sub)) {
      if (!is_eval_dir(s)) continue;
      const std::string sn = s.filename().string();
      const int64_t k = sn.rfind("step-", 0) == 0 ? std::atoll(sn.c_str() + 5) : -1;
      steps.push_back({k, s});
    }
    std::sort(steps.begin(), steps.end());
    for (const auto& [k, s] : steps) out.push_back({"eval/" + s.filename().string(), "eval", s.string()});
  }
  // A symlink that leads out of the run directory is not followed.
  out.erase(std::remove_if(out.begin(), out.end(), [&](const EvalSet& e) { return !confined_path(run.root, e.path); }),
            out.end());
  return out;
}

std::shared_ptr<const JsonlCache::Lines> JsonlCache::read(const std::string& path, bool append_only) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::make_shared<Lines>();
  const int64_t size = st.st_size;
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[path];
  if (e.data && e.size == size && e.mtime_ns == mtime) return e.data;
  // Rewritten files (metrics.jsonl is replaced whole) and shrunk files are read from the start;
  // the previous snapshot stays valid for readers holding it.
  auto data = std::make_shared<Lines>();
  int64_t from = 0, line_no = 0;
  if (append_only && e.data && size >= e.offset) {
    *data = *e.data;
    from = e.offset;
    line_no = e.line_no;
  }
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::make_shared<Lines>();
  std::string text(static_cast<size_t>(std::max<int64_t>(0, size - from)), '\0');
  std::fseek(f, static_cast<long>(from), SEEK_SET);
  const size_t got = text.empty() ? 0 : std::fread(text.data(), 1, text.size(), f);
  std::fclose(f);
  text.resize(got);
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // an unfinished last line waits for the next read
    ++line_no;
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) data->lines.push_back(std::move(j));
    else data->errors.push_back(path + ":" + std::to_string(line_no) + ": not a JSON object");
  }
  e.size = size;
  e.mtime_ns = mtime;
  e.offset = from + static_cast<int64_t>(pos);
  e.line_no = line_no;
  e.data = data;
  return data;
}

}  // namespace refract::dashboard
