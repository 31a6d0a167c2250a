// Fuzzes the video path of a request: bytes -> container / codec header probe (FFmpeg) ->
// qwen-vl-utils sampling plan -> decode of the sampled frames, resized as they arrive. As the
// server does, frame size and count are bounded from the header; every failure must be a
// refract::Error, and decoded frames must have the planned count and size.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/check.h"
#include "vision/video.h"

using namespace refract;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  vision::VideoLimits limits;
  limits.max_frame_pixels = 1 << 18;  // keeps the fuzzer under its RSS limit, as max_image_pixels does
  limits.max_total_frames = 4096;
  limits.max_sampled_bytes = 16 << 20;
  vision::VideoOptions o;
  o.max_frames = 8;
  o.max_pixels = 56 * 56;
  o.min_pixels = 28 * 28;
  try {
    const vision::VideoStreamInfo info = vision::probe_video_bytes(bytes, "fuzz", limits);
    const vision::VideoPlan plan = vision::plan_video(info, o);
    const vision::LoadedVideo v = vision::load_planned_video("", &bytes, "fuzz", info, plan, limits);
    if (int64_t(v.frames.size()) != plan.nframes) std::abort();
    for (const vision::Image& f : v.frames)
      if (f.width != plan.size.width || f.height != plan.size.height ||
          int64_t(f.rgb.size()) != f.width * f.height * 3)
        std::abort();
  } catch (const Error&) {
  }
  return 0;
}
