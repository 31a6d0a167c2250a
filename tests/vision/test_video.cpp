// Reading and sampling videos against qwen-vl-utils 0.0.14 itself (golden files made by
// tests/fixtures/video/make_sampling_golden.sh): decoded frames equal decord's and PyAV's,
// the frame count, indices, sample_fps, resized size and error messages of fetch_video on
// videos of every shape, and whole fetch_video outputs (frames bit for bit) on tiny clips and
// a list of images. Plus the limits: files declaring huge frames, or that are not videos.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/check.h"
#include "io/safetensors.h"
#include "sha256.h"
#include "test_util.h"
#include "vision/video.h"

namespace refract::vision {
namespace {

const std::string kDir = std::string(REFRACT_FIXTURES_DIR) + "/video/";

VideoOptions options_from(const nlohmann::json& item) {
  return video_options_from_json(item, "golden item");
}

std::vector<uint8_t> bytes_of(const io::SafetensorsFile& f, const std::string& name) {
  const auto& t = f.at(name);
  const auto* p = static_cast<const uint8_t*>(t.data);
  return {p, p + t.nbytes};
}

std::vector<uint8_t> concat(const std::vector<Image>& frames) {
  std::vector<uint8_t> out;
  for (const Image& f : frames) out.insert(out.end(), f.rgb.begin(), f.rgb.end());
  return out;
}

std::string what(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    std::string m = e.what();
    const size_t p = m.find("] ");  // drop the [file:line] prefix
    return p == std::string::npos ? m : m.substr(p + 2);
  }
  return "";
}

TEST(VideoDecode, FramesEqualDecordAndPyAV) {
  const auto golden = io::SafetensorsFile::open(kDir + "decoded.safetensors");
  for (const std::string name : {"landscape", "portrait"}) {
    SCOPED_TRACE(name);
    const std::string path = kDir + "clips/" + name + ".mp4";
    const auto& shape = golden->at(name).shape;  // [n, h, w, 3]
    const VideoStreamInfo info = probe_video_file(path);
    EXPECT_EQ(info.num_frames, shape[0]);
    EXPECT_EQ(info.height, shape[1]);
    EXPECT_EQ(info.width, shape[2]);
    EXPECT_EQ(info.codec, "h264");
    double fps;
    std::memcpy(&fps, golden->at(name + ".fps").data, sizeof fps);
    EXPECT_DOUBLE_EQ(info.fps, fps);  // decord's get_avg_fps
    std::vector<int64_t> all;
    for (int64_t i = 0; i < shape[0]; ++i) all.push_back(i);
    const VideoFrames v = decode_video_frames(path, all);
    ASSERT_EQ(static_cast<int64_t>(v.frames.size()), shape[0]);
    EXPECT_EQ(concat(v.frames), bytes_of(*golden, name));
    // Presentation times step by 1 / fps from 0.
    for (size_t i = 0; i < v.timestamps.size(); ++i) EXPECT_NEAR(v.timestamps[i], double(i) / fps, 1e-3);
  }
}

TEST(VideoDecode, MemoryEqualsFileAndKeepsAskedOrder) {
  const std::string path = kDir + "clips/landscape.mp4";
  const std::string bytes = testing::slurp(path);
  EXPECT_EQ(probe_video_bytes(bytes, "clip").num_frames, 12);
  const std::vector<int64_t> idx = {7, 0, 7, 11, 3};
  const VideoFrames a = decode_video_frames(path, idx);
  const VideoFrames b = decode_video_frames_bytes(bytes, "clip", idx);
  ASSERT_EQ(a.frames.size(), 5u);
  EXPECT_EQ(concat(a.frames), concat(b.frames));
  const auto golden = io::SafetensorsFile::open(kDir + "decoded.safetensors");
  const std::vector<uint8_t> all = bytes_of(*golden, "landscape");
  const size_t frame = 64 * 48 * 3;
  for (size_t k = 0; k < idx.size(); ++k) {
    EXPECT_EQ(0, std::memcmp(a.frames[k].rgb.data(), all.data() + size_t(idx[k]) * frame, frame)) << k;
  }
  // An index past the end (a container may count more frames than decode) takes the last one.
  const VideoFrames c = decode_video_frames(path, {11, 40});
  EXPECT_EQ(c.frames[0].rgb, c.frames[1].rgb);
}

TEST(VideoDecode, RefusesWhatIsNotAVideoNamingIt) {
  EXPECT_NE(what([] { probe_video_bytes("definitely not a video file", "upload.mp4"); }).find("upload.mp4"),
            std::string::npos);
  // A PNG opens as a one-frame "video" (FFmpeg's image2 demuxer, as decord would read it);
  // sampling needs at least two frames.
  EXPECT_EQ(probe_video_file(kDir + "clips/list_0.png").num_frames, 1);
  EXPECT_EQ(what([] { load_video_file(kDir + "clips/list_0.png", {}); }), "nframes should in interval [2, 1], but got 0.");
  EXPECT_NE(what([] { probe_video_file(kDir + "clips/missing.mp4"); }).find("missing.mp4"), std::string::npos);
  // Truncated to its first 600 bytes: the header may parse, the frames are gone.
  const std::string cut = testing::slurp(kDir + "clips/landscape.mp4").substr(0, 600);
  EXPECT_NE(what([&] { load_video_bytes(cut, "cut.mp4", {}); }).find("cut.mp4"), std::string::npos);
}

TEST(VideoDecode, HugeDeclaredFramesAreRefusedBeforeDecoding) {
  // A 70-byte YUV4MPEG2 file declaring 15000x15000 frames (225 M pixels each: FFmpeg itself
  // would allocate them; 60000x60000 it refuses on its own).
  const std::string bomb = "YUV4MPEG2 W15000 H15000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + std::string(16, '\x80');
  const std::string msg = what([&] { load_video_bytes(bomb, "bomb.y4m", {}); });
  EXPECT_NE(msg.find("bomb.y4m: frames of 15000x15000"), std::string::npos) << msg;
  const std::string refused = "YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + std::string(16, '\x80');
  EXPECT_NE(what([&] { load_video_bytes(refused, "huge.y4m", {}); }).find("huge.y4m: not a readable video"),
            std::string::npos);
  // The frames held while decoding are bounded too (here 4 resized frames vs 1000 bytes).
  VideoLimits tight;
  tight.max_sampled_bytes = 1000;
  const std::string msg2 = what([&] { load_video_file(kDir + "clips/landscape.mp4", {}, tight); });
  EXPECT_NE(msg2.find("over the limit of 1000"), std::string::npos) << msg2;
  tight = {};
  tight.max_total_frames = 5;
  EXPECT_NE(what([&] { probe_video_file(kDir + "clips/landscape.mp4", tight); }).find("more than 5 frames"),
            std::string::npos);
}

TEST(VideoSampling, EqualsQwenVlUtilsOnEveryCase) {
  const nlohmann::json cases = nlohmann::json::parse(testing::slurp(kDir + "sampling.json"));
  ASSERT_GE(cases.size(), 20u);
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const VideoOptions o = options_from(c["item"]);
    const int64_t total = c["total_frames"];
    const double fps = c["fps"];
    const int64_t h = c["height"], w = c["width"];
    std::vector<int64_t> indices;
    double sample_fps = 0;
    int64_t nframes = 0, range_count = 0;
    ResizedSize size;
    const std::string err = what([&] {
      const FrameRange r = video_frame_range(o, total, fps);
      range_count = r.count;
      nframes = smart_nframes(o, r.count, fps);
      indices = linspace_round(r.start, r.end, nframes);
      sample_fps = double(nframes) / std::max(double(r.count), 1e-6) * fps;
      size = video_resized_size(o, nframes, h, w);
    });
    if (c.contains("error")) {
      EXPECT_EQ(err, c["error"].get<std::string>());
      continue;
    }
    ASSERT_EQ(err, "");
    EXPECT_EQ(nframes, c["nframes"].get<int64_t>());
    EXPECT_EQ(indices, c["frames_indices"].get<std::vector<int64_t>>());
    EXPECT_EQ(range_count, c["total_num_frames"].get<int64_t>());
    EXPECT_DOUBLE_EQ(sample_fps, c["sample_fps"].get<double>());
    EXPECT_EQ(size.height, c["resized"][0].get<int64_t>());
    EXPECT_EQ(size.width, c["resized"][1].get<int64_t>());
  }
}

TEST(VideoSampling, ASideFlooredToZeroIsRefused) {
  // Hand computed: 240x48 over max_pixels 3136 gives beta = sqrt(240 * 48 / 3136) = 1.9166;
  // 240 / beta = 125.2 -> 112, 48 / beta = 25.04 -> 0 (qwen-vl-utils returns (112, 0) and
  // torchvision's resize then fails). Found by fuzz_video_decode: the frames came back unresized.
  EXPECT_EQ(what([] { qwen_vl_utils_smart_resize(240, 48, 28, 784, 3136); }),
            "frames of 240x48 (height x width) fit max_pixels 3136 only as 112x0: a side rounds below 28; "
            "raise max_pixels");
  const ResizedSize ok = qwen_vl_utils_smart_resize(240, 64, 28, 784, 3136);  // beta 2.2131: 108.4 -> 84, 28.9 -> 28
  EXPECT_EQ(ok.height, 84);
  EXPECT_EQ(ok.width, 28);
}

TEST(VideoSampling, LinspaceRoundsAsTorchFloat32) {
  // Hand-checked: 0..9 in 4 steps = 0, 3, 6, 9; 0..10 in 4 = 0, 3.33, 6.67, 10.
  EXPECT_EQ(linspace_round(0, 9, 4), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(linspace_round(0, 10, 4), (std::vector<int64_t>{0, 3, 7, 10}));
  EXPECT_EQ(linspace_round(5, 5, 1), (std::vector<int64_t>{5}));
  // 0..5 in 3 = 0, 2.5, 5: half to even.
  EXPECT_EQ(linspace_round(0, 5, 3), (std::vector<int64_t>{0, 2, 5}));
}

// torch's own linspace on 200 random long videos (up to 2 M frames, up to 768 samples).
TEST(VideoSampling, LinspaceEqualsTorchOnLongVideos) {
  const nlohmann::json cases = nlohmann::json::parse(testing::slurp(kDir + "linspace.json"));
  ASSERT_EQ(cases.size(), 200u);
  for (const auto& c : cases) {
    const std::vector<int64_t> idx = linspace_round(c[0].get<int64_t>(), c[1].get<int64_t>(), c[2].get<int64_t>());
    EXPECT_EQ(testing::sha256_hex(idx.data(), idx.size() * sizeof(int64_t)), c[3].get<std::string>()) << c.dump();
  }
}

TEST(VideoFetch, EqualsQwenVlUtilsFetchVideoBitForBit) {
  const nlohmann::json cases = nlohmann::json::parse(testing::slurp(kDir + "fetch.json"));
  const auto golden = io::SafetensorsFile::open(kDir + "fetch.safetensors");
  ASSERT_GE(cases.size(), 7u);
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const VideoOptions o = options_from(c["item"]);
    const std::string source = c["source"];
    LoadedVideo v;
    if (source == "list") {
      std::vector<std::string> paths;
      for (int i = 0; i < 3; ++i) paths.push_back(kDir + "clips/list_" + std::to_string(i) + ".png");
      v = load_video_image_list(paths, o);
    } else {
      v = load_video_file(kDir + "clips/" + source + ".mp4", o);
    }
    EXPECT_EQ(v.frame_indices, c["frames_indices"].get<std::vector<int64_t>>());
    EXPECT_DOUBLE_EQ(v.sample_fps, c["sample_fps"].get<double>());
    EXPECT_DOUBLE_EQ(double(v.total_frames), c["total_num_frames"].get<double>());
    EXPECT_DOUBLE_EQ(v.video_fps, c["fps"].get<double>());
    const auto shape = c["shape"].get<std::vector<int64_t>>();
    ASSERT_EQ(static_cast<int64_t>(v.frames.size()), shape[0]);
    EXPECT_EQ(v.frames[0].height, shape[1]);
    EXPECT_EQ(v.frames[0].width, shape[2]);
    const std::vector<uint8_t> got = concat(v.frames);
    if (golden->find(name)) {
      const std::vector<uint8_t> want = bytes_of(*golden, name);
      ASSERT_EQ(got.size(), want.size());
      size_t diff = 0;
      for (size_t i = 0; i < got.size(); ++i) diff += got[i] != want[i];
      EXPECT_EQ(diff, 0u) << "of " << got.size() << " values";
    }
    EXPECT_EQ(testing::sha256_hex(got.data(), got.size()), c["sha256"].get<std::string>());
  }
}

TEST(VideoFetch, ResizeIsTorchvisionsNotPils) {
  // The antialiased float32 bicubic of torch differs from PIL's fixed-point one on some
  // pixels; qwen-vl-utils resizes video frames with torch's (checked bit for bit above). Here:
  // a constant image stays constant through both, and same-size is the identity.
  Image flat;
  flat.width = 30;
  flat.height = 20;
  flat.rgb.assign(30 * 20 * 3, 77);
  const Image r = resize_bicubic_antialias_torch(flat, 47, 13);
  for (uint8_t px : r.rgb) ASSERT_EQ(px, 77);
  EXPECT_EQ(resize_bicubic_antialias_torch(flat, 30, 20).rgb, flat.rgb);
}

TEST(VideoOptionsJson, ReadsQwenVlUtilsKeysAndRejectsBadOnes) {
  const VideoOptions o = options_from(nlohmann::json::parse(
      R"({"type": "video", "video": "a.mp4", "fps": 1, "max_frames": 8, "min_pixels": 1000, "max_pixels": 2000.5,
          "total_pixels": 99999, "video_start": 1.5})"));
  EXPECT_EQ(*o.fps, 1.0);
  EXPECT_EQ(*o.max_frames, 8.0);
  EXPECT_EQ(*o.max_pixels, 2000.5);
  EXPECT_EQ(*o.video_start, 1.5);
  EXPECT_FALSE(o.nframes.has_value());
  EXPECT_NE(what([] { options_from(nlohmann::json::parse(R"({"fps": "fast"})")); }).find("golden item: fps"),
            std::string::npos);
  EXPECT_NE(what([] { options_from(nlohmann::json::parse(R"({"fps": 2, "nframes": 4})")); }).find("fps"),
            std::string::npos);
  EXPECT_NE(what([] { options_from(nlohmann::json::parse(R"({"fps": -1})")); }).find("fps"), std::string::npos);
}

}  // namespace
}  // namespace refract::vision
