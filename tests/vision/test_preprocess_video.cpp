// preprocess_video against transformers 4.50's Qwen2VLImageProcessor(videos=[frames]) on the 5
// frames of tests/fixtures/video (tests/fixtures/video/make_video_golden.py): the same
// pixel_values_videos bit for bit (the last frame repeated into the third temporal patch) and
// the same video_grid_thw.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/check.h"
#include "io/safetensors.h"
#include "vision/image.h"
#include "vision/preprocess_video.h"

namespace refract::vision {
namespace {

const std::string kDir = std::string(REFRACT_FIXTURES_DIR) + "/video/";

std::vector<Image> fixture_frames() {
  std::vector<Image> frames;
  for (int k = 0; k < 5; ++k) frames.push_back(decode_image_file(kDir + "frames/frame_" + std::to_string(k) + ".png"));
  return frames;
}

TEST(PreprocessVideo, EqualsTransformersBitForBit) {
  const PreprocessedVideo v = preprocess_video(fixture_frames(), PreprocessConfig{});
  const auto golden = io::SafetensorsFile::open(kDir + "processor.safetensors");
  const auto& grid = golden->at("video_grid_thw");
  ASSERT_EQ(grid.nbytes, 24u);
  int64_t want[3];
  std::memcpy(want, grid.data, 24);
  EXPECT_EQ(v.grid_thw[0], want[0]);
  EXPECT_EQ(v.grid_thw[1], want[1]);
  EXPECT_EQ(v.grid_thw[2], want[2]);
  EXPECT_EQ(v.grid_thw[0], 3);  // 5 frames -> 3 temporal patches
  const auto& pv = golden->at("pixel_values_videos");
  ASSERT_EQ(pv.shape, (std::vector<int64_t>{v.rows, 1176}));
  ASSERT_EQ(pv.nbytes, v.pixel_values.size() * sizeof(float));
  std::vector<float> ref(v.pixel_values.size());
  std::memcpy(ref.data(), pv.data, pv.nbytes);
  size_t differ = 0;
  for (size_t i = 0; i < ref.size(); ++i) differ += ref[i] != v.pixel_values[i];
  EXPECT_EQ(differ, 0u);
}

// A two-frame video of one repeated image is an image: the same rows as preprocess_image.
TEST(PreprocessVideo, TwoEqualFramesAreTheImage) {
  const Image f = fixture_frames()[2];
  const PreprocessedVideo v = preprocess_video({f, f}, PreprocessConfig{});
  const Preprocessed p = preprocess_image(f, PreprocessConfig{});
  EXPECT_EQ(v.grid_thw, p.grid_thw);
  EXPECT_EQ(v.pixel_values, p.pixel_values);
}

TEST(PreprocessVideo, FramesOfDifferentSizesAreAnError) {
  auto frames = fixture_frames();
  Image small;
  small.width = 56;
  small.height = 56;
  small.rgb.assign(56 * 56 * 3, 0);
  frames[3] = small;
  try {
    preprocess_video(frames, PreprocessConfig{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace refract::vision
