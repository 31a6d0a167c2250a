// One sample type for every data source (VLM-R1 REC JSON, VLM-R1 JSONL, ms-swift JSONL,
// COCO, the shapes world). Plain data; no torch.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/chat_template.h"

namespace refract::data {

struct ImageRef {
  std::string path;      // resolved path (image folder joined), or a data URL
  int64_t width = 0;     // original size when known (0 until decoded)
  int64_t height = 0;
};

// A video: a file (FFmpeg) or its frames as image files, with qwen-vl-utils' item settings
// (fps, max_frames, min_pixels, max_pixels, total_pixels, ...; docs/models.md "Video input").
struct VideoRef {
  std::string path;                 // a video file (resolved like image paths); empty for frames
  std::vector<std::string> frames;  // or its frames in order
  nlohmann::json options = nlohmann::json::object();
};

// How logs (completions.jsonl, eval predictions) name a media path: a data URL as "data:" (its
// bytes are not repeated), anything else as given.
inline std::string logged_media_path(const std::string& path) {
  return path.rfind("data:", 0) == 0 ? std::string("data:") : path;
}

struct Sample {
  std::string id;
  std::string source;                   // "<file>:<line>" for error reports
  std::vector<ImageRef> images;         // in order of appearance
  std::vector<VideoRef> videos;         // in order of appearance (<video> placeholders)
  std::vector<text::Message> prompt;    // conversation up to the assistant's turn; image items
                                        // reference `images` by index and stand where <image> stood
  std::string response;                 // the assistant target (SFT), may be empty for GRPO
  // Ground truth for rewards, in original-image pixels:
  //   rec   [x1, y1, x2, y2]                       (numbers)
  //   det   [{"bbox_2d": [x1, y1, x2, y2], "label": "..."}, ...]
  //   count a number; ocr / cls a string; otherwise the parsed answer JSON, else its text.
  nlohmann::json solution;
  std::string task;                     // "rec" | "det" | "count" | "ocr" | "cls" | ...
  std::string reward_method;            // the line's accu_reward_method, else the file's
                                        // reward_method ("" when neither is given)
  nlohmann::json extra = nlohmann::json::object();  // every other dataset column, passed to rewards
};

}  // namespace refract::data
