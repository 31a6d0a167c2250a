// `refract infer`: one prompt (with images) through the rollout engine, completion printed.
// No torch types here: the CLI includes this header.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "generate/generation_config.h"
#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::commands {

// The model settings (model_name_or_path, adapter, device, ...) and what to ask.
struct InferSettings : model::ModelSettings {
  std::vector<std::string> image;    // image files, shown before the prompt text
  std::vector<std::string> video;    // video files (FFmpeg), after the images, before the text
  std::vector<std::string> video_frames;  // one more video given as its frames (image files)
  // Video sampling as qwen-vl-utils' item keys fps / max_frames / min_pixels / max_pixels /
  // total_pixels; 0 = qwen-vl-utils' default (2 fps, 768 frames, 128*28*28, 768*28*28, ...).
  double video_fps = 0;
  double video_max_frames = 0;
  double video_min_pixels = 0;
  double video_max_pixels = 0;
  double video_total_pixels = 0;
  std::string prompt;                // the user's text
  std::string system;                // optional system message (default: Qwen's)
  generate::GenerationConfig generation;  // do_sample defaults to false here (greedy)
  InferSettings() {
    generation.do_sample = false;
    generation.max_new_tokens = 256;
  }
};

void declare(Options& o, InferSettings& s);

struct InferCompletion {
  std::string text;           // decoded, special tokens skipped
  std::string finish_reason;  // eos | length | stop
  int64_t num_tokens = 0;
};
// Loads everything, generates num_generations completions and returns them (the CLI prints).
std::vector<InferCompletion> run_infer(const InferSettings& s);

}  // namespace refract::commands
