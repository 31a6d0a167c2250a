#include "common/data_dir.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "common/check.h"

namespace fs = std::filesystem;

namespace refract {
namespace {

// Why `dir` is not a data directory, or "" when it is one.
std::string why_not_data_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "no such directory";
  if (!fs::is_directory(dir / "configs", ec)) return "no configs/ in it";
  return "";
}

// Whether `path` lies under `dir` (both absolute).
bool is_under(const fs::path& path, const fs::path& dir) {
  const fs::path rel = path.lexically_normal().lexically_relative(dir.lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

DataDirResult find_data_dir(const DataDirSearch& s) {
  DataDirResult r;
  if (s.env_set) {
    // An override is not second-guessed: a wrong one is reported rather than skipped over.
    const fs::path env = fs::absolute(s.env).lexically_normal();
    const std::string why = why_not_data_dir(env);
    if (why.empty()) r.dir = env.string();
    else r.looked.push_back("REFRACT_DATA_DIR=" + s.env + ": " + why);
    return r;
  }
  r.looked.push_back("REFRACT_DATA_DIR: not set");

  if (s.exe.empty()) {
    r.looked.push_back("next to the executable: its path is unknown (/proc/self/exe unreadable)");
  } else {
    const fs::path installed =
        (fs::path(s.exe).parent_path().parent_path() / "share" / "refract").lexically_normal();
    const std::string why = why_not_data_dir(installed);
    if (why.empty()) {
      r.dir = installed.string();
      return r;
    }
    r.looked.push_back(installed.string() + " (next to " + s.exe + "): " + why);
  }

  if (s.source_dir.empty()) return r;
  // An installed copy must not wander into the tree it was built from, which may have moved on.
  const std::string source = fs::path(s.source_dir).lexically_normal().string();
  std::error_code ec;
  const fs::path build = fs::weakly_canonical(s.build_dir, ec);
  if (s.exe.empty() || !is_under(s.exe, ec ? fs::path(s.build_dir) : build)) {
    r.looked.push_back(source + " (source tree): not used, the executable is not in its build directory " +
                       s.build_dir);
    return r;
  }
  const std::string why = why_not_data_dir(source);
  if (why.empty()) r.dir = source;
  else r.looked.push_back(source + " (source tree): " + why);
  return r;
}

DataDirSearch this_process_data_dir_search() {
  DataDirSearch s;
  if (const char* env = std::getenv("REFRACT_DATA_DIR"); env && *env) s.env_set = true, s.env = env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) s.exe = exe.string();
#if defined(REFRACT_DATA_SOURCE_DIR) && defined(REFRACT_DATA_BUILD_DIR)
  s.source_dir = REFRACT_DATA_SOURCE_DIR;
  s.build_dir = REFRACT_DATA_BUILD_DIR;
#endif
  return s;
}

std::string data_dir() {
  const DataDirResult r = find_data_dir(this_process_data_dir_search());
  std::string looked;
  for (const auto& place : r.looked) looked += "\n  " + place;
  REFRACT_CHECK(!r.dir.empty())
      << "refract's data directory (demo warm start, configs) not found; looked at:" << looked
      << "\nSet REFRACT_DATA_DIR to the share/refract directory of an install or to a source tree.";
  return r.dir;
}

std::string data_path(const std::string& relative) { return (fs::path(data_dir()) / relative).string(); }

std::string data_path_or_empty(const std::string& relative) {
  const DataDirResult r = find_data_dir(this_process_data_dir_search());
  return r.dir.empty() ? "" : (fs::path(r.dir) / relative).string();
}

}  // namespace refract
