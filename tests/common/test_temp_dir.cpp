// tests/temp_dir.h: the scratch directory exists while its TempDir lives, goes away with
// everything in it, and a forked child that exits leaves its parent's directory alone.
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace refract {
namespace {

namespace fs = std::filesystem;

TEST(TempDir, ExistsWhileAliveAndIsRemovedWithItsTree) {
  std::string path;
  {
    const testing::TempDir tmp("temp_dir_test");
    path = tmp.path();
    EXPECT_EQ(path, (fs::temp_directory_path() / ("refract_temp_dir_test_" + std::to_string(::getpid()))).string());
    ASSERT_TRUE(fs::is_directory(path));
    EXPECT_TRUE(fs::is_empty(path));
    EXPECT_EQ(tmp / "a.txt", path + "/a.txt");
    fs::create_directories(tmp / "sub/deeper");
    std::ofstream(tmp / "a.txt") << "a";
    std::ofstream(tmp / "sub/deeper/b.txt") << "b";
    ASSERT_TRUE(fs::exists(tmp / "sub/deeper/b.txt"));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(TempDir, StartsEmptyWhenLeftoversExist) {
  const std::string path = (fs::temp_directory_path() / ("refract_temp_dir_left_" + std::to_string(::getpid()))).string();
  fs::create_directories(path + "/old");
  std::ofstream(path + "/old/x") << "x";
  const testing::TempDir tmp("temp_dir_left");
  ASSERT_EQ(tmp.path(), path);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

// Runs `child` in a forked process that then ends through exit() (statics destroyed, as when a
// test process ends); returns its exit status (-1 if it did not exit) and its pid.
template <typename F>
int in_child(F child, pid_t* child_pid = nullptr) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    child();
    std::exit(0);
  }
  if (child_pid != nullptr) *child_pid = pid;
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(TempDir, ForkedChildDoesNotRemoveTheParentsDirectory) {
  auto tmp = std::make_unique<testing::TempDir>("temp_dir_fork");
  const std::string kept = testing::process_temp_dir("temp_dir_fork_static");
  std::ofstream(*tmp / "keep.txt") << "parent";
  std::ofstream(kept + "/keep.txt") << "parent";
  // The child destroys its copy of the parent's TempDir, then its statics at exit.
  EXPECT_EQ(in_child([&] { tmp.reset(); }), 0);
  EXPECT_TRUE(fs::exists(*tmp / "keep.txt"));
  EXPECT_TRUE(fs::exists(kept + "/keep.txt"));
}

TEST(TempDir, ProcessTempDirIsEmptiedWhenAskedAgainAndRemovedAtExit) {
  pid_t pid = 0;
  const int status = in_child(
      [] {
        const std::string p = testing::process_temp_dir("temp_dir_exit");
        std::ofstream(p + "/f") << "x";
        const bool ok = fs::exists(p + "/f") && testing::process_temp_dir("temp_dir_exit") == p && fs::is_empty(p);
        std::ofstream(p + "/g") << "y";
        if (!ok) std::exit(2);
      },
      &pid);
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(fs::exists(fs::temp_directory_path() / ("refract_temp_dir_exit_" + std::to_string(pid))));
}

}  // namespace
}  // namespace refract
