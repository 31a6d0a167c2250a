// Decoding and preprocessing a request's images (torch-free). A picture that does not decode
// or that the processor rejects is the client's mistake: ApiError 400 naming the field.
// The decoded size is checked against max_image_pixels from the file's header BEFORE any
// pixel is allocated (a small file declaring a huge image costs nothing).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "serve/chat_request.h"
#include "vision/preprocess.h"
#include "vision/preprocess_video.h"

namespace refract::serve {

struct MediaLimits {
  int64_t max_image_pixels = 4096 * 4096;  // decoded width * height, from the header
  size_t max_file_bytes = 32u << 20;       // a local image file (a data URL is bounded by the body)
  std::string allowed_local_media_path;    // canonical; "" = no local files (see RequestLimits)
  // Videos: frames declared by the container are checked against max_image_pixels, the file's
  // frame count, and the video tokens the sampling plan gives, all before any frame is decoded.
  int64_t max_video_tokens = 16384;        // per video (the server sets its max_model_len)
  int64_t max_video_file_frames = 1000000; // frames in the container
  int64_t max_video_decoded_bytes = int64_t(1) << 30;  // sampled frames held while decoding
};

// One Preprocessed per request image, in order. Also fills image_tokens of every image item of
// req.messages so the chat template expands the right number of <|image_pad|>.
std::vector<vision::Preprocessed> load_request_images(ChatRequest& req, const vision::PreprocessConfig& cfg,
                                                      const MediaLimits& limits = {});

// One request video, read and sampled as qwen-vl-utils does, through the processor's video path.
struct RequestVideo {
  vision::PreprocessedVideo processed;
  double second_per_grid_t = 1.0;  // temporal_patch_size / sample_fps (Qwen2.5-VL time scale)
};
// One RequestVideo per request video, in order; fills video_tokens of every video item. Errors
// (not a video, too large, undecodable) are ApiError 400 naming the field.
std::vector<RequestVideo> load_request_videos(ChatRequest& req, const vision::PreprocessConfig& cfg,
                                              const MediaLimits& limits = {});

// The bytes of a base64 data URL's payload (standard or URL-safe alphabet, whitespace
// skipped, padding optional). Throws ApiError 400 naming `param`.
std::string data_url_bytes(const std::string& url, const std::string& param);

}  // namespace refract::serve
