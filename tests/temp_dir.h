// Scratch directories of the tests. ctest runs every test case as its own process, so whatever a
// test (or a static world built once per process) writes under the temp dir has to be removed by
// that process, even when an ASSERT ends the test early.
#pragma once
#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>

namespace refract::testing {

// A scratch directory $TMPDIR/refract_<name>_<pid>, emptied on creation and removed with
// everything in it when the object dies (also at process exit for a static). Only the creating
// process removes it: a forked child that exits must not delete its parent's files.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : owner_(::getpid()),
        path_((std::filesystem::temp_directory_path() / ("refract_" + name + "_" + std::to_string(owner_))).string()) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    if (::getpid() != owner_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& child) const { return path_ + "/" + child; }

 private:
  pid_t owner_;
  std::string path_;
};

// The path of TempDir(name), kept until the process exits: for helpers that hand out plain
// paths. Asking again for the same name gives it back emptied.
inline std::string process_temp_dir(const std::string& name) {
  static std::map<std::string, std::unique_ptr<TempDir>> dirs;
  auto& d = dirs[name];
  d.reset();  // the old one goes first: the new one has the same path
  d = std::make_unique<TempDir>(name);
  return d->path();
}

}  // namespace refract::testing
