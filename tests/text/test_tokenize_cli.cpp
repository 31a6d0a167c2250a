// End to end: `refract tokenize` on the golden file reproduces HF's ids and decoded text.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "common/atomic_file.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;

TEST(TokenizeCli, GoldenFileMatchesReference) {
  const std::string fixtures = std::string(REFRACT_FIXTURES_DIR) + "/tokenizer";
  const refract::testing::TempDir tmp("tokenize");
  const fs::path out = tmp / "out.jsonl";
  const std::string cmd = std::string(REFRACT_BINARY) + " tokenize --tokenizer " + fixtures +
                          " --input " + fixtures + "/public_golden.jsonl --output " + out.string() +
                          " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream want(fixtures + "/public_golden.jsonl"), got(out);
  std::string lw, lg;
  int n = 0;
  while (std::getline(want, lw)) {
    ASSERT_TRUE(static_cast<bool>(std::getline(got, lg))) << "output has fewer lines";
    const auto w = nlohmann::json::parse(lw), g = nlohmann::json::parse(lg);
    EXPECT_EQ(g["ids"], w["ids"]) << "line " << n;
    EXPECT_EQ(g["decoded"], w["decoded"]) << "line " << n;
    ++n;
  }
  EXPECT_FALSE(static_cast<bool>(std::getline(got, lg))) << "output has extra lines";
  EXPECT_EQ(n, 406);
}

TEST(TokenizeCli, BadInputLineIsAnErrorNamingTheLine) {
  const refract::testing::TempDir tmp("tokenize_bad");
  const fs::path in = tmp / "in.jsonl";
  refract::write_file_atomic(in.string(), "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  const std::string cmd = std::string(REFRACT_BINARY) + " tokenize --tokenizer " + REFRACT_FIXTURES_DIR +
                          "/tokenizer --input " + in.string() + " --output " + in.string() + ".out 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string msg;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) msg += buf;
  EXPECT_NE(pclose(p), 0);
  EXPECT_NE(msg.find(":2:"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(in.string() + ".out"));
}

}  // namespace
