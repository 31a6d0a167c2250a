// The settings of a video item, read from JSON and range-checked (torch-free, FFmpeg-free:
// request validation and the dataset loaders use it alone).
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "vision/video.h"

namespace refract::vision {
namespace {

std::string py_repr(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void check_option(const std::optional<double>& v, const char* key, double min) {
  REFRACT_CHECK(!v || (std::isfinite(*v) && *v >= min)) << "video option " << key << " must be >= " << min << ", got "
                                                      << (v ? py_repr(*v) : "");
}

}  // namespace

void check_video_options(const VideoOptions& o) {
  // ref: smart_nframes: assert not ("fps" in ele and "nframes" in ele)
  REFRACT_CHECK(!(o.fps && o.nframes)) << "Only accept either `fps` or `nframes`";
  check_option(o.fps, "fps", 1e-9);
  check_option(o.nframes, "nframes", 0);
  check_option(o.min_frames, "min_frames", 0);
  check_option(o.max_frames, "max_frames", 0);
  check_option(o.min_pixels, "min_pixels", 1);
  check_option(o.max_pixels, "max_pixels", 1);
  check_option(o.total_pixels, "total_pixels", 1);
  // Times are clamped to the video (qwen-vl-utils): any finite number.
  check_option(o.video_start, "video_start", -std::numeric_limits<double>::max());
  check_option(o.video_end, "video_end", -std::numeric_limits<double>::max());
  check_option(o.resized_height, "resized_height", 1);
  check_option(o.resized_width, "resized_width", 1);
  check_option(o.sample_fps, "sample_fps", 1e-9);
}


VideoOptions video_options_from_json(const nlohmann::json& item, const std::string& where) {
  REFRACT_CHECK(item.is_object()) << where << ": a video item must be an object";
  VideoOptions o;
  const std::pair<const char*, std::optional<double> VideoOptions::*> keys[] = {
      {"fps", &VideoOptions::fps},
      {"nframes", &VideoOptions::nframes},
      {"min_frames", &VideoOptions::min_frames},
      {"max_frames", &VideoOptions::max_frames},
      {"min_pixels", &VideoOptions::min_pixels},
      {"max_pixels", &VideoOptions::max_pixels},
      {"total_pixels", &VideoOptions::total_pixels},
      {"video_start", &VideoOptions::video_start},
      {"video_end", &VideoOptions::video_end},
      {"resized_height", &VideoOptions::resized_height},
      {"resized_width", &VideoOptions::resized_width},
      {"sample_fps", &VideoOptions::sample_fps},
  };
  for (const auto& [key, value] : item.items()) {
    if (key == "type" || key == "video" || key == "video_url") continue;
    bool known = false;
    for (const auto& [name, field] : keys) {
      if (key != name) continue;
      known = true;
      REFRACT_CHECK(value.is_number()) << where << ": " << key << " must be a number, got " << value.dump();
      o.*field = value.get<double>();
    }
    REFRACT_CHECK(known) << where << ": unknown video key '" << key
                         << "' (fps, nframes, min_frames, max_frames, min_pixels, max_pixels, total_pixels, "
                            "video_start, video_end, resized_height, resized_width, sample_fps)";
  }
  try {
    check_video_options(o);
  } catch (const Error& e) {
    const std::string m = e.what();
    const size_t p = m.find("] ");
    REFRACT_FAIL() << where << ": " << (p == std::string::npos ? m : m.substr(p + 2));
  }
  return o;
}

}  // namespace refract::vision
