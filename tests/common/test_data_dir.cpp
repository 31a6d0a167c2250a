#include "common/data_dir.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/check.h"

namespace refract {
namespace {

namespace fs = std::filesystem;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string all(const DataDirResult& r) {
  std::string s;
  for (const auto& l : r.looked) s += l + "\n";
  return s;
}

// A scratch tree per test (ctest runs the tests of this file as parallel processes):
//   prefix/bin/refract, prefix/share/refract/configs   (an install)
//   src/configs, src/build/refract                      (a source tree and its build directory)
class DataDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("data_dir_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "prefix/bin");
    fs::create_directories(root_ / "src/build");
    fs::create_directories(root_ / "src/configs");
    std::ofstream(root_ / "prefix/bin/refract") << "";
    std::ofstream(root_ / "src/build/refract") << "";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string p(const std::string& rel) const { return (root_ / rel).string(); }
  void make_install() const { fs::create_directories(root_ / "prefix/share/refract/configs"); }
  DataDirSearch installed() const { return {false, "", p("prefix/bin/refract"), p("src"), p("src/build")}; }
  DataDirSearch in_build() const { return {false, "", p("src/build/refract"), p("src"), p("src/build")}; }
  fs::path root_;
};

TEST_F(DataDir, InstalledBinaryUsesShareRefractNextToIt) {
  make_install();
  const DataDirResult r = find_data_dir(installed());
  EXPECT_EQ(r.dir, p("prefix/share/refract")) << all(r);
}

TEST_F(DataDir, BuildDirectoryBinaryUsesTheSourceTree) {
  const DataDirResult r = find_data_dir(in_build());
  EXPECT_EQ(r.dir, p("src")) << all(r);
  EXPECT_TRUE(has(all(r), p("src/share/refract") + " (next to " + p("src/build/refract") + "): no such directory"))
      << all(r);
}

TEST_F(DataDir, InstallNextToTheBinaryWinsOverTheSourceTree) {
  // The path next to the executable is tried first, also for a binary in a build directory.
  fs::create_directories(root_ / "src/share/refract/configs");
  const DataDirResult r = find_data_dir(in_build());
  EXPECT_EQ(r.dir, p("src/share/refract")) << all(r);
}

TEST_F(DataDir, InstalledCopyDoesNotFallBackToTheSourceTree) {
  const DataDirResult r = find_data_dir(installed());  // share/refract missing
  EXPECT_EQ(r.dir, "");
  ASSERT_EQ(r.looked.size(), 3u) << all(r);
  EXPECT_EQ(r.looked[0], "REFRACT_DATA_DIR: not set");
  EXPECT_TRUE(has(r.looked[1], p("prefix/share/refract") + " (next to " + p("prefix/bin/refract") + ")"))
      << all(r);
  EXPECT_TRUE(has(r.looked[2], p("src") + " (source tree): not used")) << all(r);
  EXPECT_TRUE(has(r.looked[2], p("src/build"))) << all(r);
}

TEST_F(DataDir, ADirectoryWithoutConfigsIsNotADataDir) {
  fs::create_directories(root_ / "prefix/share/refract/assets");
  fs::remove_all(root_ / "src/configs");
  DataDirResult r = find_data_dir(installed());
  EXPECT_EQ(r.dir, "");
  EXPECT_TRUE(has(all(r), p("prefix/share/refract") + " (next to " + p("prefix/bin/refract") + "): no configs/"))
      << all(r);
  r = find_data_dir(in_build());
  EXPECT_EQ(r.dir, "");
  EXPECT_TRUE(has(all(r), p("src") + " (source tree): no configs/")) << all(r);
}

TEST_F(DataDir, EnvironmentOverridesAndIsNotSecondGuessed) {
  make_install();
  fs::create_directories(root_ / "elsewhere/configs");
  DataDirSearch s = installed();
  s.env_set = true;
  s.env = p("elsewhere");
  DataDirResult r = find_data_dir(s);
  EXPECT_EQ(r.dir, p("elsewhere")) << all(r);
  // A wrong override is an error, not a silent fall-back to the install next to the binary.
  s.env = p("missing");
  r = find_data_dir(s);
  EXPECT_EQ(r.dir, "");
  ASSERT_EQ(r.looked.size(), 1u) << all(r);
  EXPECT_EQ(r.looked[0], "REFRACT_DATA_DIR=" + p("missing") + ": no such directory");
}

TEST_F(DataDir, UnknownExecutableIsReported) {
  DataDirSearch s = in_build();
  s.exe = "";
  const DataDirResult r = find_data_dir(s);
  EXPECT_EQ(r.dir, "");
  EXPECT_TRUE(has(all(r), "/proc/self/exe")) << all(r);
}

// This test binary lives in the build directory, so without REFRACT_DATA_DIR it finds the
// source tree; with a wrong one, the error names it.
TEST(DataDirProcess, TestBinaryFindsTheSourceTreeAndTheErrorSaysWhereItLooked) {
  const char* saved = std::getenv("REFRACT_DATA_DIR");
  const std::string saved_value = saved ? saved : "";
  unsetenv("REFRACT_DATA_DIR");
  EXPECT_EQ(fs::path(data_dir()), fs::path(REFRACT_SOURCE_DIR).lexically_normal());
  EXPECT_EQ(fs::path(data_path("configs")), fs::path(REFRACT_SOURCE_DIR).lexically_normal() / "configs");
  setenv("REFRACT_DATA_DIR", "/nonexistent/refract-data", 1);
  try {
    data_dir();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "REFRACT_DATA_DIR=/nonexistent/refract-data: no such directory")) << e.what();
  }
  EXPECT_EQ(data_path_or_empty("configs"), "");
  if (saved) setenv("REFRACT_DATA_DIR", saved_value.c_str(), 1);
  else unsetenv("REFRACT_DATA_DIR");
}

}  // namespace
}  // namespace refract
