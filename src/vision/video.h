// Video input as qwen-vl-utils' fetch_video reads it (qwen-vl-utils 0.0.14, the decord backend):
// the file's frame count and average fps -> smart_nframes (`fps` 2 by default, `min_frames` /
// `max_frames`, a multiple of FRAME_FACTOR 2) -> frame indices linspace(start, end, n).round()
// -> the sampled frames decoded to RGB (FFmpeg: libavformat / libavcodec / libswscale) ->
// one size for all frames by qwen-vl-utils' smart_resize (per-frame `min_pixels` / `max_pixels`,
// capped by `total_pixels` over the frames) -> torchvision's antialiased bicubic resize.
// A video can also be a list of image files (fetch_image per frame, padded to an even count).
// The model then takes the frames through vision::preprocess_video and (Qwen2.5-VL)
// second_per_grid_ts = temporal_patch_size / sample_fps.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "vision/image.h"
#include "vision/preprocess.h"

namespace refract::vision {

// The settings of one video item, under qwen-vl-utils' keys ({"type": "video", "video": ...,
// "fps": 2, ...}). Unset = qwen-vl-utils' default.
struct VideoOptions {
  std::optional<double> fps;             // frames sampled per second of video (2.0)
  std::optional<double> nframes;         // a frame count instead of fps (rounded to even)
  std::optional<double> min_frames;      // 4 (fps only)
  std::optional<double> max_frames;      // min(768, frames in the video) (fps only)
  std::optional<double> min_pixels;      // per frame, 128*28*28
  std::optional<double> max_pixels;      // per frame, 768*28*28, never above the total_pixels share
  std::optional<double> total_pixels;    // over all frames, 128000*28*28*0.9
  std::optional<double> video_start;     // seconds
  std::optional<double> video_end;       // seconds
  std::optional<double> resized_height;  // both given: this size (smart_resized), no pixel limits
  std::optional<double> resized_width;
  std::optional<double> sample_fps;      // a list of images: its frame rate (2.0)
};

// Reads the settings of a {"type": "video", ...} item (other keys: "type", "video",
// "video_url"). A value that is not a number in range, or an unknown key, is an error naming
// `where` (file:line of a dataset, the request) and the key.
VideoOptions video_options_from_json(const nlohmann::json& item, const std::string& where);
// Throws when a set value is out of range (fps > 0, pixels >= 1, ...) or fps and nframes are
// both given ("Only accept either `fps` or `nframes`").
void check_video_options(const VideoOptions& o);

// What reading a video may cost; checked from the container's header before any frame is
// decoded (a file declaring huge frames or a huge count is refused without allocating).
struct VideoLimits {
  int64_t max_frame_pixels = 2 * 89478485;        // width x height of a frame (Pillow's bomb limit)
  int64_t max_sampled_bytes = int64_t(2) << 30;   // frames held while decoding (x width x height x 3)
  int64_t max_total_frames = 1000000;             // frames in the file (a sampled index can be any)
  int64_t max_list_frames = 768;                  // images in a list-of-images video
};

// The video stream of a file as read from its container (no frame decoded).
struct VideoStreamInfo {
  int64_t width = 0;
  int64_t height = 0;
  int64_t num_frames = 0;  // video packets in the stream (counted by demuxing)
  double fps = 0;          // average frame rate (avg_frame_rate, else r_frame_rate)
  std::string codec;       // e.g. "h264"
};

// Decoded frames: RGB and presentation time in seconds.
struct VideoFrames {
  std::vector<Image> frames;
  std::vector<double> timestamps;
};

// A video ready for the processor: frames resized to one size, with the sampling facts.
struct LoadedVideo {
  std::vector<Image> frames;             // nframes (even), all of one size
  std::vector<int64_t> frame_indices;    // which frames of the file (or list) were taken
  std::vector<double> timestamps;        // their presentation times (s); list: index / sample_fps
  int64_t total_frames = 0;              // frames in the file (or the selected time range)
  double video_fps = 0;                  // the file's frame rate (list: sample_fps)
  double sample_fps = 0;                 // nframes / total_frames * video_fps (qwen-vl-utils)
};

// ---- reading (FFmpeg) ------------------------------------------------------------------------
// `bytes` variants read from memory (a data URL's payload); `name` is used in errors.
VideoStreamInfo probe_video_file(const std::string& path, const VideoLimits& limits = {});
VideoStreamInfo probe_video_bytes(std::string_view bytes, const std::string& name,
                                  const VideoLimits& limits = {});
// Decodes the frames with these indices (presentation order, 0-based; sorted or not, repeats
// allowed) to RGB. An index past the last decodable frame takes the last one (the frame count
// of a container can exceed what decodes). With `resize_to` set, each kept frame is resized
// (resize_bicubic_antialias_torch) as soon as it is decoded, so only resized frames are held.
// Checks the limits (frame size, held bytes) before decoding.
VideoFrames decode_video_frames(const std::string& path, const std::vector<int64_t>& indices,
                                const VideoLimits& limits = {}, ResizedSize resize_to = {});
VideoFrames decode_video_frames_bytes(std::string_view bytes, const std::string& name,
                                      const std::vector<int64_t>& indices, const VideoLimits& limits = {},
                                      ResizedSize resize_to = {});

// ---- sampling (qwen-vl-utils vision_process.py) ------------------------------------------------
// smart_nframes: the number of frames to take. Throws "nframes should in interval [2, N]".
int64_t smart_nframes(const VideoOptions& o, int64_t total_frames, double video_fps);
// calculate_video_frame_range: first and last frame of [video_start, video_end].
struct FrameRange {
  int64_t start = 0;
  int64_t end = 0;
  int64_t count = 0;
};
FrameRange video_frame_range(const VideoOptions& o, int64_t total_frames, double video_fps);
// torch.linspace(start, end, n) (float32, as torch computes it) .round() (half to even).
std::vector<int64_t> linspace_round(int64_t start, int64_t end, int64_t n);
// qwen-vl-utils' smart_resize (not transformers': a floor of `factor` per side, no minimum side;
// a side that floors to 0 is an error, where qwen-vl-utils fails later in torchvision's resize).
ResizedSize qwen_vl_utils_smart_resize(double height, double width, int64_t factor, double min_pixels,
                                       double max_pixels);
// The size fetch_video resizes nframes frames of height x width to.
ResizedSize video_resized_size(const VideoOptions& o, int64_t nframes, int64_t height, int64_t width,
                               int64_t factor = 28);
// torchvision.transforms.functional.resize(uint8 frames, [h, w], BICUBIC, antialias=True):
// torch's float32 antialiased bicubic (Keys a = -0.5, width pass then height pass), clamped and
// rounded half to even back to 8 bits.
Image resize_bicubic_antialias_torch(const Image& src, int64_t width, int64_t height);

// ---- fetch_video -----------------------------------------------------------------------------
// What fetch_video will take from a file, known from its header: the server checks the token
// count (nframes / 2 * size / 28^2) against its limits before decoding anything.
struct VideoPlan {
  FrameRange range;
  int64_t nframes = 0;
  std::vector<int64_t> indices;
  ResizedSize size;
  double sample_fps = 0;
};
VideoPlan plan_video(const VideoStreamInfo& info, const VideoOptions& o);
// Decodes what `plan` says (path, or `bytes` when non-null).
LoadedVideo load_planned_video(const std::string& path, const std::string_view* bytes, const std::string& name,
                               const VideoStreamInfo& info, const VideoPlan& plan, const VideoLimits& limits = {});
LoadedVideo load_video_file(const std::string& path, const VideoOptions& o, const VideoLimits& limits = {});
LoadedVideo load_video_bytes(std::string_view bytes, const std::string& name, const VideoOptions& o,
                             const VideoLimits& limits = {});
// A list of image files as one video (qwen-vl-utils: each read by fetch_image).
LoadedVideo load_video_image_list(const std::vector<std::string>& paths, const VideoOptions& o,
                                  const VideoLimits& limits = {});

}  // namespace refract::vision
