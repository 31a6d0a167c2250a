// End to end: the `refract preprocess` binary on fixture images, checked against the
// reference's hashes, and its refusal (non-zero exit, no output) of an input the reference
// rejects.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "io/safetensors.h"
#include "sha256.h"
#include "test_util.h"

namespace refract::vision {
namespace {

using refract::testing::fixture;
using refract::testing::load_json;
using refract::testing::sha256_hex;

int run(const std::string& args, std::string* err_out = nullptr) {
  const std::string err = ::testing::TempDir() + "/preprocess_stderr.txt";
  const int status = std::system((std::string(REFRACT_BINARY) + " preprocess " + args + " 2> " + err).c_str());
  if (err_out) *err_out = refract::testing::slurp(err);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const nlohmann::json& case_by_id(const std::string& id) {
  static const auto doc = load_json("cases.json");
  for (const auto& c : doc["cases"])
    if (c["id"] == id) return c;
  throw std::runtime_error("no case " + id);
}

TEST(PreprocessCli, WritesTheReferenceTensors) {
  for (const char* id : {"p09_exif6_q90_w640_h480__b", "p01_rgb_w30_h31__a"}) {
    const auto& c = case_by_id(id);
    const std::string out = ::testing::TempDir() + "/" + id + ".safetensors";
    std::filesystem::remove(out);
    const std::string args = "--image " + fixture(c["image"].get<std::string>()) +
                             " --min_pixels " + std::to_string(c["settings"]["min_pixels"].get<int64_t>()) +
                             " --max_pixels " + std::to_string(c["settings"]["max_pixels"].get<int64_t>()) +
                             " --output " + out;
    std::string err;
    ASSERT_EQ(run(args, &err), 0) << err;
    const auto f = io::SafetensorsFile::open(out);
    const auto& pv = f->at("pixel_values");
    EXPECT_EQ(pv.dtype, io::DType::F32);
    EXPECT_EQ(pv.shape, (std::vector<int64_t>{c["pixel_values_shape"][0], 1176}));
    EXPECT_EQ(sha256_hex(pv.data, pv.nbytes), c["pixel_values_sha256"].get<std::string>()) << id;
    const auto& grid = f->at("image_grid_thw");
    EXPECT_EQ(grid.dtype, io::DType::I64);
    EXPECT_EQ(grid.shape, (std::vector<int64_t>{1, 3}));
    int64_t g[3];
    std::memcpy(g, grid.data, sizeof(g));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(g[i], c["grid_thw"][i].get<int64_t>());
    const auto& resized = f->at("resized_uint8");
    EXPECT_EQ(resized.dtype, io::DType::U8);
    EXPECT_EQ(resized.shape,
              (std::vector<int64_t>{c["resized_h"].get<int64_t>(), c["resized_w"].get<int64_t>(), 3}));
    const auto golden = io::SafetensorsFile::open(fixture(c["tensors"].get<std::string>()));
    EXPECT_EQ(sha256_hex(resized.data, resized.nbytes), golden->metadata().at("resized_uint8_sha256"));
  }
}

TEST(PreprocessCli, RejectedInputExitsNonZeroAndWritesNothing) {
  const auto& c = case_by_id("p14_tiny_w10_h10__a");
  const std::string out = ::testing::TempDir() + "/rejected.safetensors";
  std::filesystem::remove(out);
  std::string err;
  EXPECT_NE(run("--image " + fixture(c["image"].get<std::string>()) + " --output " + out, &err), 0);
  EXPECT_NE(err.find(c["error"]["message"].get<std::string>()), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(out));
  // A missing image fails too, naming the file.
  EXPECT_NE(run("--image /nonexistent/x.png --output " + out, &err), 0);
  EXPECT_NE(err.find("/nonexistent/x.png"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace refract::vision
