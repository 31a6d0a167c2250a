// `refract env` reports what this binary was built with and runs on: checked against what the
// test itself sees (libtorch version macros, torch::cuda, the CPU's thread count, /proc/cpuinfo,
// git), in JSON and text.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace {

std::string run(const std::string& args) {
  std::string out;
  FILE* p = popen((std::string(REFRACT_BINARY) + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  return out;
}

bool cpu_has(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

}  // namespace

TEST(Env, JsonDescribesThisBuildAndMachine) {
  const auto env = nlohmann::json::parse(run("env --json"));
  const std::string version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + ".";
  EXPECT_EQ(env["libtorch"]["version"].get<std::string>().rfind(version, 0), 0u) << env["libtorch"];
  EXPECT_EQ(env["refract"]["built_against_libtorch"].get<std::string>().rfind(version, 0), 0u);
  EXPECT_EQ(env["cuda"]["available"].get<bool>(), torch::cuda::is_available());
  EXPECT_EQ(env["cuda"]["devices"].size(), torch::cuda::is_available() ? torch::cuda::device_count() : 0u);
  EXPECT_EQ(env["cpu"]["logical_cores"].get<unsigned>(), std::thread::hardware_concurrency());
  const auto& isa = env["cpu"]["isa"];
  for (const char* f : {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    EXPECT_EQ(std::find(isa.begin(), isa.end(), f) != isa.end(), cpu_has(f)) << f;
  // The BLAS libtorch really loaded (Debian's alternatives can give the ~25x slower reference BLAS).
  EXPECT_FALSE(env["libtorch"]["blas_libraries_loaded"].empty());
  EXPECT_GE(env["libtorch"]["threads"].get<int>(), 1);
  const std::string rev = env["refract"]["git_revision"];
  FILE* g = popen(("git -C " + std::string(REFRACT_SOURCE_DIR) + " rev-parse --short=12 HEAD 2>/dev/null").c_str(), "r");
  char buf[64] = {0};
  const bool have_git = g != nullptr && fgets(buf, sizeof buf, g) != nullptr;
  if (g) pclose(g);
  if (have_git) EXPECT_EQ(rev.substr(0, 12), std::string(buf).substr(0, 12));
}

TEST(Env, TextHasOneSectionPerTopic) {
  const std::string text = run("env");
  for (const char* section : {"refract:\n", "libtorch:\n", "cuda:\n", "cpu:\n", "os:\n"})
    EXPECT_NE(text.find(section), std::string::npos) << section << "\n" << text;
  EXPECT_EQ(text.find("refract:\n"), 0u);  // refract's own version first
  EXPECT_NE(text.find("  devices: "), std::string::npos);
}
