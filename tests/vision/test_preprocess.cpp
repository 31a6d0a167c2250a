// Qwen2VLImageProcessor parity against the reference dump (transformers 4.50, Pillow 9.4):
// smart_resize on 215 public pairs, the float32 normalisation table, and every case of
// cases.json end to end (decode -> resize -> pixel_values), bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/check.h"
#include "io/safetensors.h"
#include "sha256.h"
#include "test_util.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace refract::vision {
namespace {

using refract::testing::fixture;
using refract::testing::load_json;
using refract::testing::sha256_hex;

// Error text without the "[file:line] " prefix REFRACT_CHECK adds.
std::string reason(const Error& e) {
  std::string s = e.what();
  const size_t p = s.find("] ");
  return p == std::string::npos ? s : s.substr(p + 2);
}

TEST(SmartResize, All215PublicPairs) {
  const auto doc = load_json("smart_resize_public.json");
  int n = 0;
  for (const auto& c : doc["cases"]) {
    PreprocessConfig cfg;
    cfg.min_pixels = c["min_pixels"];
    cfg.max_pixels = c["max_pixels"];
    ASSERT_EQ(c["factor"].get<int64_t>(), cfg.patch_size * cfg.merge_size);
    const int64_t h = c["h"], w = c["w"];
    SCOPED_TRACE(c.dump());
    ++n;
    if (!c["error"].is_null()) {
      try {
        smart_resize(h, w, cfg);
        ADD_FAILURE() << "accepted";
      } catch (const Error& e) {
        EXPECT_EQ(reason(e), c["error"]["message"].get<std::string>());
      }
      continue;
    }
    const ResizedSize r = smart_resize(h, w, cfg);
    EXPECT_EQ(r.height, c["resized_h"].get<int64_t>());
    EXPECT_EQ(r.width, c["resized_w"].get<int64_t>());
  }
  EXPECT_EQ(n, 215);
}

TEST(SmartResize, HalfToEvenAndAspectBoundary) {
  PreprocessConfig cfg;  // hand-computed: 70/28 = 2.5 -> 2, 126/28 = 4.5 -> 4, 98/28 = 3.5 -> 4
  EXPECT_EQ(smart_resize(70, 126, cfg).height, 56);
  EXPECT_EQ(smart_resize(70, 126, cfg).width, 112);
  EXPECT_EQ(smart_resize(98, 98, cfg).height, 112);
  EXPECT_NO_THROW(smart_resize(28, 5600, cfg));  // ratio exactly 200 is accepted
  EXPECT_THROW(smart_resize(28, 5601, cfg), Error);
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Normalize, LutIsBitExact) {
  const auto doc = load_json("normalize_lut.json");
  const auto lut = normalize_lut();
  for (int c = 0; c < 3; ++c) {
    for (int u = 0; u < 256; ++u) {
      ASSERT_EQ(bits(lut[c][u]), doc["bits"][c][u].get<uint32_t>()) << "c=" << c << " u=" << u;
    }
  }
  for (int u = 0; u < 256; ++u)
    ASSERT_EQ(bits(static_cast<float>(u) / 255.0f), doc["rescaled_f32_bits"][u].get<uint32_t>());
}

TEST(ResizeBicubic, ConstantImageStaysConstant) {
  // Weights are renormalised to sum to 1 per output pixel, so a flat image stays flat
  // whatever the scale (up, down, one axis only).
  Image flat;
  flat.width = 37;
  flat.height = 23;
  flat.rgb.resize(37 * 23 * 3);
  for (size_t i = 0; i < flat.rgb.size(); i += 3) {
    flat.rgb[i] = 7;
    flat.rgb[i + 1] = 128;
    flat.rgb[i + 2] = 250;
  }
  for (auto [w, h] : {std::pair<int64_t, int64_t>{112, 56}, {5, 3}, {37, 60}, {90, 23}, {1, 1}}) {
    const Image r = resize_bicubic(flat, w, h);
    ASSERT_EQ(r.rgb.size(), size_t(w * h * 3));
    for (size_t i = 0; i < r.rgb.size(); i += 3) {
      ASSERT_EQ(r.rgb[i], 7) << w << "x" << h;
      ASSERT_EQ(r.rgb[i + 1], 128);
      ASSERT_EQ(r.rgb[i + 2], 250);
    }
  }
  EXPECT_EQ(resize_bicubic(flat, 37, 23).rgb, flat.rgb);  // same size: a copy
}

// The image a case starts from, through the case's loader: transformers' load_image or
// qwen_vl_utils' to_rgb (RGBA pasted on white, no EXIF transpose).
Image case_input(const nlohmann::json& c) {
  if (c["loader"].get<std::string>().find("qwen_vl_utils") != std::string::npos)
    return decode_image_file(fixture(c["image"].get<std::string>()), qwen_vl_utils_loader());
  return decode_image_file(fixture(c["image"].get<std::string>()));
}

class Cases : public ::testing::TestWithParam<int> {};

TEST_P(Cases, MatchesTheReference) {
  static const auto doc = load_json("cases.json");
  const auto& c = doc["cases"][GetParam()];
  SCOPED_TRACE(c["id"].get<std::string>());
  PreprocessConfig cfg;
  cfg.min_pixels = c["settings"]["min_pixels"];
  cfg.max_pixels = c["settings"]["max_pixels"];
  const Image input = case_input(c);
  ASSERT_EQ(input.height, c["loaded_h"].get<int64_t>());
  ASSERT_EQ(input.width, c["loaded_w"].get<int64_t>());
  if (!c["error"].is_null()) {
    try {
      preprocess_image(input, cfg);
      FAIL() << "accepted an input the reference rejects";
    } catch (const Error& e) {
      EXPECT_EQ(reason(e), c["error"]["message"].get<std::string>());
    }
    return;
  }
  const Preprocessed p = preprocess_image(input, cfg);
  const auto golden = io::SafetensorsFile::open(fixture(c["tensors"].get<std::string>()));
  const auto& meta = golden->metadata();

  // Grid.
  const auto& grid = golden->at("image_grid_thw");
  ASSERT_EQ(grid.nbytes, 24u);
  int64_t want_grid[3];
  std::memcpy(want_grid, grid.data, 24);
  EXPECT_EQ(p.grid_thw[0], want_grid[0]);
  EXPECT_EQ(p.grid_thw[1], want_grid[1]);
  EXPECT_EQ(p.grid_thw[2], want_grid[2]);
  EXPECT_EQ(p.grid_thw[1], c["grid_thw"][1].get<int64_t>());

  // Resized uint8: sampled rows equal, whole image sha256 equal.
  EXPECT_EQ(p.resized.height, c["resized_h"].get<int64_t>());
  EXPECT_EQ(p.resized.width, c["resized_w"].get<int64_t>());
  const auto& rrows = golden->at("resized_uint8_rows");
  const auto& ridx = golden->at("resized_uint8_row_index");
  const size_t line = size_t(p.resized.width) * 3;
  ASSERT_EQ(rrows.shape[1], p.resized.width);
  for (int64_t i = 0; i < ridx.numel(); ++i) {
    int64_t y;
    std::memcpy(&y, ridx.data + 8 * i, 8);
    ASSERT_LT(y, p.resized.height);
    EXPECT_EQ(std::memcmp(p.resized.rgb.data() + y * line, rrows.data + i * line, line), 0)
        << "resized row " << y;
  }
  EXPECT_EQ(sha256_hex(p.resized.rgb.data(), p.resized.rgb.size()),
            meta.at("resized_uint8_sha256"));

  // pixel_values: sampled rows within 1e-6 (and reported per element), whole-buffer sha256.
  const auto& prows = golden->at("pixel_values_rows");
  const auto& pidx = golden->at("pixel_values_row_index");
  ASSERT_EQ(prows.shape[1], 1176);
  EXPECT_EQ(p.rows, c["pixel_values_shape"][0].get<int64_t>());
  EXPECT_EQ(p.pixel_values.size(), size_t(p.rows) * 1176);
  int bad = 0;
  for (int64_t i = 0; i < pidx.numel(); ++i) {
    int64_t r;
    std::memcpy(&r, pidx.data + 8 * i, 8);
    ASSERT_LT(r, p.rows);
    for (int64_t k = 0; k < 1176; ++k) {
      float want;
      std::memcpy(&want, prows.data + (i * 1176 + k) * 4, 4);
      const float got = p.pixel_values[r * 1176 + k];
      if (!(std::fabs(got - want) <= 1e-6f) && bad++ < 5)
        ADD_FAILURE() << "pixel_values[" << r << "][" << k << "] = " << got << ", want " << want;
    }
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(sha256_hex(p.pixel_values.data(), p.pixel_values.size() * sizeof(float)),
            c["pixel_values_sha256"].get<std::string>());
  // Full-size cases over 64 MiB keep the hash only in cases.json.
  if (meta.count("pixel_values_sha256"))
    EXPECT_EQ(meta.at("pixel_values_sha256"), c["pixel_values_sha256"].get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(ImagePreprocess, Cases, ::testing::Range(0, 48),
                         [](const ::testing::TestParamInfo<int>& info) {
                           static const auto doc = load_json("cases.json");
                           std::string id = doc["cases"][info.param]["id"];
                           for (char& ch : id)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return id;
                         });

TEST(Cases, FixtureHas48Cases) { EXPECT_EQ(load_json("cases.json")["cases"].size(), 48u); }

}  // namespace
}  // namespace refract::vision
