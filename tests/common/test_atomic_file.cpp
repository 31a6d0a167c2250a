#include "common/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/check.h"

namespace refract {
namespace {

TEST(AtomicFile, WritesAndReplacesWithoutLeftovers) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(::testing::TempDir()) / "atomic_file_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string p = (dir / "a.txt").string();
  write_file_atomic(p, "first");
  write_file_atomic(p, "second");
  EXPECT_EQ(read_file(p), "second");
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) (void)e, ++n;
  EXPECT_EQ(n, 1);  // no temp files left behind
}

TEST(AtomicFile, ErrorsNameThePath) {
  try {
    write_file_atomic("/nonexistent_dir/x.bin", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent_dir/x.bin"), std::string::npos);
  }
  EXPECT_THROW(read_file("/nonexistent_dir/y"), Error);
}

}  // namespace
}  // namespace refract
