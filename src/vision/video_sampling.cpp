// qwen-vl-utils' fetch_video, step by step, with Python's number semantics (ints and floats
// mixed as the reference mixes them; round() is half to even).
// ref: qwen-vl-utils 0.0.14 vision_process.py (smart_nframes, calculate_video_frame_range,
// _read_video_decord, fetch_video, smart_resize, fetch_image).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "vision/video.h"

namespace refract::vision {
namespace {

constexpr double kFps = 2.0;             // FPS
constexpr int64_t kFrameFactor = 2;      // FRAME_FACTOR
constexpr double kFpsMinFrames = 4;      // FPS_MIN_FRAMES
constexpr int64_t kFpsMaxFrames = 768;   // FPS_MAX_FRAMES
constexpr int64_t kVideoMinTokens = 128; // VIDEO_MIN_TOKEN_NUM
constexpr int64_t kVideoMaxTokens = 768; // VIDEO_MAX_TOKEN_NUM
constexpr int64_t kImageMinTokens = 4;   // IMAGE_MIN_TOKEN_NUM
constexpr int64_t kImageMaxTokens = 16384;
constexpr int64_t kModelSeqLen = 128000; // MODEL_SEQ_LEN (env MODEL_SEQ_LEN not read)

// Python's round(x) / math.ceil / math.floor on a float, to int.
int64_t py_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }
int64_t round_by_factor(double x, int64_t f) { return py_round(x / f) * f; }
int64_t ceil_by_factor(double x, int64_t f) { return static_cast<int64_t>(std::ceil(x / f)) * f; }
int64_t floor_by_factor(double x, int64_t f) { return static_cast<int64_t>(std::floor(x / f)) * f; }

std::string py_repr(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// ---- torch's antialiased bicubic (float32) ---------------------------------------------------
// ref: aten/src/ATen/native/cpu/UpSampleKernel.cpp (HelperInterpBase::
// _compute_indices_min_size_weights_aa, HelperInterpCubic::aa_filter, interpolate_aa_single_dim)
// and UpSample.h area_pixel_compute_scale, for scalar_t = float. The mixed float / double
// arithmetic is written out as torch's C++ evaluates it.
struct AaTaps {
  std::vector<int64_t> xmin, xsize;
  std::vector<float> w;  // [out, max_interp]
  int64_t max_interp = 0;
};

// torch's x86 builds contract the cubic's multiply-adds (and the tap sums below) into fused
// multiply-adds; written out with std::fma here, so the result does not depend on how this file
// is compiled (it is built with -ffp-contract=off). Checked bit for bit against torch 2.15.
float aa_cubic(float x) {
  constexpr float a = -0.5f;
  x = std::abs(x);
  // ((a + 2) * x - (a + 3)) * x * x + 1
  if (x < 1.0f) return std::fma(std::fma(a + 2, x, -(a + 3)) * x, x, 1.0f);
  // ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  if (x < 2.0f) return std::fma(std::fma(std::fma(a, x, -5 * a), x, 8 * a), x, -4 * a);
  return 0.0f;
}

AaTaps aa_taps(int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? static_cast<float>((4 * 0.5) * scale) : static_cast<float>(4 * 0.5);
  AaTaps t;
  t.max_interp = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.xmin.resize(size_t(out));
  t.xsize.resize(size_t(out));
  t.w.assign(size_t(out * t.max_interp), 0.0f);
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / scale) : 1.0f;
  for (int64_t i = 0; i < out; ++i) {
    const float center = static_cast<float>(scale * (i + 0.5));
    const int64_t xmin = std::max(static_cast<int64_t>((center - support) + 0.5), int64_t(0));
    int64_t xsize = std::min(static_cast<int64_t>((center + support) + 0.5), in) - xmin;
    xsize = std::clamp(xsize, int64_t(0), t.max_interp);
    float* w = t.w.data() + i * t.max_interp;
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      w[j] = aa_cubic(static_cast<float>(((static_cast<float>(j + xmin) - center) + 0.5) * invscale));
      total += w[j];
    }
    if (total != 0.0f) {
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    }
    t.xmin[size_t(i)] = xmin;
    t.xsize[size_t(i)] = xsize;
  }
  return t;
}

// One pass along a dimension of a [rows, cols, 3] float buffer (horizontal: along cols).
std::vector<float> aa_pass(const std::vector<float>& src, int64_t rows, int64_t cols, bool horizontal,
                           int64_t out_size) {
  const int64_t in_size = horizontal ? cols : rows;
  const AaTaps t = aa_taps(in_size, out_size);
  const int64_t out_rows = horizontal ? rows : out_size, out_cols = horizontal ? out_size : cols;
  std::vector<float> dst(size_t(out_rows * out_cols * 3));
  for (int64_t r = 0; r < out_rows; ++r) {
    for (int64_t c = 0; c < out_cols; ++c) {
      const int64_t o = horizontal ? c : r;
      const float* w = t.w.data() + o * t.max_interp;
      for (int ch = 0; ch < 3; ++ch) {
        auto at = [&](int64_t k) {
          const int64_t sr = horizontal ? r : k, sc = horizontal ? k : c;
          return src[size_t((sr * cols + sc) * 3 + ch)];
        };
        const int64_t x0 = t.xmin[size_t(o)];
        float acc = at(x0) * w[0];
        for (int64_t j = 1; j < t.xsize[size_t(o)]; ++j) acc = std::fma(at(x0 + j), w[j], acc);
        dst[size_t((r * out_cols + c) * 3 + ch)] = acc;
      }
    }
  }
  return dst;
}

std::vector<Image> resize_all(const std::vector<Image>& frames, ResizedSize size) {
  std::vector<Image> out;
  out.reserve(frames.size());
  for (const Image& f : frames) out.push_back(resize_bicubic_antialias_torch(f, size.width, size.height));
  return out;
}

}  // namespace

int64_t smart_nframes(const VideoOptions& o, int64_t total_frames, double video_fps) {
  check_video_options(o);
  int64_t nframes = 0;
  if (o.nframes) {
    nframes = round_by_factor(*o.nframes, kFrameFactor);
  } else {
    const double fps = o.fps.value_or(kFps);
    const int64_t min_frames = ceil_by_factor(o.min_frames.value_or(kFpsMinFrames), kFrameFactor);
    const int64_t max_frames = floor_by_factor(
        o.max_frames.value_or(static_cast<double>(std::min(kFpsMaxFrames, total_frames))), kFrameFactor);
    double n = total_frames / video_fps * fps;
    n = std::min(std::min(std::max(n, static_cast<double>(min_frames)), static_cast<double>(max_frames)),
                 static_cast<double>(total_frames));
    nframes = floor_by_factor(n, kFrameFactor);
  }
  REFRACT_CHECK(kFrameFactor <= nframes && nframes <= total_frames)
      << "nframes should in interval [" << kFrameFactor << ", " << total_frames << "], but got " << nframes << ".";
  return nframes;
}

FrameRange video_frame_range(const VideoOptions& o, int64_t total_frames, double video_fps) {
  REFRACT_CHECK(video_fps > 0) << "video_fps must be a positive number";
  REFRACT_CHECK(total_frames > 0) << "total_frames must be a positive integer";
  if (!o.video_start && !o.video_end) return {0, total_frames - 1, total_frames};
  const double max_duration = total_frames / video_fps;
  int64_t start = 0, end = total_frames - 1;
  if (o.video_start) start = static_cast<int64_t>(std::ceil(std::max(0.0, std::min(*o.video_start, max_duration)) * video_fps));
  if (o.video_end) {
    end = static_cast<int64_t>(std::floor(std::max(0.0, std::min(*o.video_end, max_duration)) * video_fps));
    end = std::min(end, total_frames - 1);
  }
  // ref: the reference's message, clamped times and fps as Python prints them.
  const double start_s = o.video_start ? std::max(0.0, std::min(*o.video_start, max_duration)) : 0.0;
  const double end_s = o.video_end ? std::max(0.0, std::min(*o.video_end, max_duration)) : max_duration;
  REFRACT_CHECK(start < end) << "Invalid time range: Start frame " << start << " (at " << py_repr(start_s)
                             << "s) exceeds end frame " << end << " (at " << py_repr(end_s)
                             << "s). Video duration: " << fmt::format("{:.2f}", max_duration) << "s (" << total_frames
                             << " frames @ " << py_repr(video_fps) << "fps)";
  return {start, end, end - start + 1};
}

std::vector<int64_t> linspace_round(int64_t start, int64_t end, int64_t n) {
  REFRACT_CHECK(n >= 1) << "linspace: n must be positive, got " << n;
  // ref: RangeFactoriesKernel.cpp linspace_kernel (float, serial): step = (end - start) /
  // (steps - 1); the first half counts from start, the second from end, each a fused
  // multiply-add in torch's x86 builds (VideoSampling.LinspaceEqualsTorchOnLongVideos: 200
  // lengths up to 2 M frames; without the fusion about a third of them differ somewhere).
  const float fs = static_cast<float>(start), fe = static_cast<float>(end);
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = static_cast<int64_t>(std::nearbyint(fs));
    return out;
  }
  const float step = (fe - fs) / static_cast<float>(n - 1);
  const int64_t halfway = n / 2;
  for (int64_t i = 0; i < n; ++i) {
    const float v = i < halfway ? std::fma(step, static_cast<float>(i), fs)
                                : std::fma(-step, static_cast<float>(n - i - 1), fe);
    out[size_t(i)] = static_cast<int64_t>(std::nearbyint(v));
  }
  return out;
}

ResizedSize qwen_vl_utils_smart_resize(double height, double width, int64_t factor, double min_pixels,
                                       double max_pixels) {
  REFRACT_CHECK(max_pixels >= min_pixels) << "The max_pixels of image must be greater than or equal to min_pixels.";
  REFRACT_CHECK(height > 0 && width > 0) << "smart_resize: invalid size " << height << "x" << width;
  const double ratio = std::max(height, width) / std::min(height, width);
  REFRACT_CHECK(!(ratio > 200)) << "absolute aspect ratio must be smaller than 200, got " << py_repr(ratio);
  int64_t h = std::max(factor, round_by_factor(height, factor));
  int64_t w = std::max(factor, round_by_factor(width, factor));
  if (static_cast<double>(h * w) > max_pixels) {
    const double beta = std::sqrt((height * width) / max_pixels);
    h = floor_by_factor(height / beta, factor);
    w = floor_by_factor(width / beta, factor);
  } else if (static_cast<double>(h * w) < min_pixels) {
    const double beta = std::sqrt(min_pixels / (height * width));
    h = ceil_by_factor(height * beta, factor);
    w = ceil_by_factor(width * beta, factor);
  }
  // qwen-vl-utils has no max(factor, ...) here: a thin frame under a small max_pixels floors a
  // side to 0 and torchvision's resize then fails; say so before decoding anything.
  REFRACT_CHECK(h > 0 && w > 0) << fmt::format("frames of {}x{} (height x width) fit max_pixels {} only as {}x{}: "
                                            "a side rounds below {}; raise max_pixels",
                                            height, width, max_pixels, h, w, factor);
  return {h, w};
}

ResizedSize video_resized_size(const VideoOptions& o, int64_t nframes, int64_t height, int64_t width, int64_t factor) {
  check_video_options(o);
  REFRACT_CHECK(nframes > 0) << "video_resized_size: no frames";
  const double f2 = static_cast<double>(factor * factor);
  if (o.resized_height && o.resized_width) {
    return qwen_vl_utils_smart_resize(*o.resized_height, *o.resized_width, factor, kImageMinTokens * f2,
                                      kImageMaxTokens * f2);
  }
  const double min_pixels = o.min_pixels.value_or(kVideoMinTokens * f2);
  const double total_pixels = o.total_pixels.value_or(static_cast<double>(kModelSeqLen * factor * factor) * 0.9);
  double max_pixels = std::max(std::min(kVideoMaxTokens * f2, total_pixels / static_cast<double>(nframes) * kFrameFactor),
                               static_cast<double>(static_cast<int64_t>(min_pixels * 1.05)));
  max_pixels = std::min(o.max_pixels.value_or(max_pixels), max_pixels);
  return qwen_vl_utils_smart_resize(static_cast<double>(height), static_cast<double>(width), factor, min_pixels,
                                    max_pixels);
}

Image resize_bicubic_antialias_torch(const Image& src, int64_t width, int64_t height) {
  REFRACT_CHECK(src.width > 0 && src.height > 0 && src.rgb.size() == size_t(src.width * src.height * 3))
      << "resize: invalid source image";
  REFRACT_CHECK(width > 0 && height > 0) << "resize: invalid target size " << width << "x" << height;
  if (width == src.width && height == src.height) return src;
  std::vector<float> buf(src.rgb.begin(), src.rgb.end());
  int64_t rows = src.height, cols = src.width;
  // ref: separable_upsample_generic_Nd_kernel_impl: the contiguous (width) dimension first,
  // a dimension whose size does not change is skipped.
  if (width != cols) {
    buf = aa_pass(buf, rows, cols, /*horizontal=*/true, width);
    cols = width;
  }
  if (height != rows) {
    buf = aa_pass(buf, rows, cols, /*horizontal=*/false, height);
    rows = height;
  }
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(buf.size());
  // ref: torchvision _functional_tensor.resize: bicubic on uint8 clamps to [0, 255], then
  // _cast_squeeze_out rounds (half to even) back to uint8.
  for (size_t i = 0; i < buf.size(); ++i) out.rgb[i] = static_cast<uint8_t>(std::nearbyint(std::clamp(buf[i], 0.0f, 255.0f)));
  return out;
}

VideoPlan plan_video(const VideoStreamInfo& info, const VideoOptions& o) {
  VideoPlan p;
  p.range = video_frame_range(o, info.num_frames, info.fps);
  p.nframes = smart_nframes(o, p.range.count, info.fps);
  p.indices = linspace_round(p.range.start, p.range.end, p.nframes);
  p.size = video_resized_size(o, p.nframes, info.height, info.width);
  p.sample_fps = static_cast<double>(p.nframes) / std::max(static_cast<double>(p.range.count), 1e-6) * info.fps;
  return p;
}

LoadedVideo load_planned_video(const std::string& path, const std::string_view* bytes, const std::string& name,
                               const VideoStreamInfo& info, const VideoPlan& plan, const VideoLimits& limits) {
  // Frames are resized as they are decoded: memory holds the resized frames only.
  VideoFrames decoded = bytes ? decode_video_frames_bytes(*bytes, name, plan.indices, limits, plan.size)
                              : decode_video_frames(path, plan.indices, limits, plan.size);
  LoadedVideo v;
  v.frames = std::move(decoded.frames);
  v.timestamps = std::move(decoded.timestamps);
  v.frame_indices = plan.indices;
  v.total_frames = plan.range.count;
  v.video_fps = info.fps;
  v.sample_fps = plan.sample_fps;
  return v;
}

LoadedVideo load_video_file(const std::string& path, const VideoOptions& o, const VideoLimits& limits) {
  const VideoStreamInfo info = probe_video_file(path, limits);
  return load_planned_video(path, nullptr, path, info, plan_video(info, o), limits);
}

LoadedVideo load_video_bytes(std::string_view bytes, const std::string& name, const VideoOptions& o,
                             const VideoLimits& limits) {
  const VideoStreamInfo info = probe_video_bytes(bytes, name, limits);
  return load_planned_video("", &bytes, name, info, plan_video(info, o), limits);
}

LoadedVideo load_video_image_list(const std::vector<std::string>& paths, const VideoOptions& o,
                                  const VideoLimits& limits) {
  check_video_options(o);
  REFRACT_CHECK(!paths.empty()) << "a video given as a list of images needs at least one image";
  REFRACT_CHECK(static_cast<int64_t>(paths.size()) <= limits.max_list_frames)
      << "a video given as a list of images has " << paths.size() << " images, over the limit of "
      << limits.max_list_frames;
  // ref: fetch_video passes image_factor (28) as fetch_image's image_patch_size, so each image
  // is smart_resized to multiples of 2 * 28 = 56 with IMAGE_MIN/MAX_TOKEN_NUM * 56^2 (or the
  // item's min_pixels / max_pixels), by PIL's default (bicubic) resize, before the video resize.
  constexpr int64_t kListFactor = 56;
  std::vector<Image> frames;
  for (size_t i = 0; i < paths.size(); ++i) {
    Image img = decode_image_file(paths[i], qwen_vl_utils_loader());
    ResizedSize s;
    if (o.resized_height && o.resized_width) {
      s = qwen_vl_utils_smart_resize(*o.resized_height, *o.resized_width, kListFactor,
                                     kImageMinTokens * kListFactor * kListFactor,
                                     kImageMaxTokens * kListFactor * kListFactor);
    } else {
      s = qwen_vl_utils_smart_resize(static_cast<double>(img.height), static_cast<double>(img.width), kListFactor,
                                     o.min_pixels.value_or(kImageMinTokens * kListFactor * kListFactor),
                                     o.max_pixels.value_or(kImageMaxTokens * kListFactor * kListFactor));
    }
    frames.push_back(resize_bicubic(img, s.width, s.height));
    REFRACT_CHECK(frames.back().width == frames[0].width && frames.back().height == frames[0].height)
        << paths[i] << ": resized to " << frames.back().width << "x" << frames.back().height << ", the first image of the video to "
        << frames[0].width << "x" << frames[0].height << " (the images of a video must share one size)";
  }
  // ref: nframes = ceil_by_factor(len, FRAME_FACTOR), padded with the last image.
  const int64_t n = ceil_by_factor(static_cast<double>(frames.size()), kFrameFactor);
  while (static_cast<int64_t>(frames.size()) < n) frames.push_back(frames.back());
  LoadedVideo v;
  v.sample_fps = o.sample_fps.value_or(2.0);
  v.video_fps = v.sample_fps;
  v.total_frames = n;
  for (int64_t i = 0; i < n; ++i) {
    v.frame_indices.push_back(i);
    v.timestamps.push_back(static_cast<double>(i) / v.sample_fps);
  }
  v.frames = resize_all(frames, video_resized_size(o, n, frames[0].height, frames[0].width));
  return v;
}

}  // namespace refract::vision
