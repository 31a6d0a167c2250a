// `refract preprocess`'s back-end: the reference's tensors in a safetensors file, or nothing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "commands/preprocess.h"
#include "common/check.h"
#include "io/safetensors.h"
#include "../vision/sha256.h"
#include "../vision/test_util.h"

namespace refract::commands {
namespace {

using refract::testing::fixture;
using refract::testing::load_json;
using refract::testing::sha256_hex;

TEST(PreprocessToSafetensors, WritesTheReferenceTensorsOrNothing) {
  static const auto doc = load_json("cases.json");
  const std::string out = ::testing::TempDir() + "/vision_preprocess_out.safetensors";
  std::remove(out.c_str());
  for (const auto& c : doc["cases"]) {
    if (c["id"] != "p11_webp_w448_h336__b" && c["id"] != "p14_tiny_w10_h10__c") continue;
    vision::PreprocessConfig cfg;
    cfg.min_pixels = c["settings"]["min_pixels"];
    cfg.max_pixels = c["settings"]["max_pixels"];
    const std::string image = fixture(c["image"].get<std::string>());
    if (!c["error"].is_null()) {
      EXPECT_THROW(preprocess_to_safetensors(image, cfg, out), Error);
      EXPECT_FALSE(std::ifstream(out).good()) << "wrote output for a rejected input";
      continue;
    }
    preprocess_to_safetensors(image, cfg, out);
    const auto f = io::SafetensorsFile::open(out);
    const auto& pv = f->at("pixel_values");
    EXPECT_EQ(pv.shape, (std::vector<int64_t>{c["pixel_values_shape"][0].get<int64_t>(), 1176}));
    EXPECT_EQ(sha256_hex(pv.data, pv.nbytes), c["pixel_values_sha256"].get<std::string>());
    int64_t g[3];
    std::memcpy(g, f->at("image_grid_thw").data, sizeof(g));
    EXPECT_EQ(g[1], c["grid_thw"][1].get<int64_t>());
    EXPECT_EQ(g[2], c["grid_thw"][2].get<int64_t>());
    EXPECT_EQ(f->at("resized_uint8").shape,
              (std::vector<int64_t>{c["resized_h"].get<int64_t>(), c["resized_w"].get<int64_t>(), 3}));
    std::remove(out.c_str());
  }
}

}  // namespace
}  // namespace refract::commands
