// Entry points of `refract model ...` (no torch types: the CLI includes this).
#pragma once
#include <cstdint>
#include <string>

#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::commands {

// refract model forward: one forward pass over inputs stored in a safetensors file.
// The model settings (model_name_or_path, adapter, device, torch_dtype, threads) and the files.
struct ModelForwardSettings : model::ModelSettings {
  std::string inputs;       // safetensors with input_ids, attention_mask, pixel_values, image_grid_thw,
                            // pixel_values_videos, video_grid_thw, second_per_grid_ts
  std::string output;       // safetensors: logits, position_ids, rope_deltas, image_embeds, video_embeds
};
void declare(Options& o, ModelForwardSettings& s);
void run_model_forward(const ModelForwardSettings& s);

// refract model init: a randomly initialised model in HF layout.
struct ModelInitSettings {
  std::string preset = "tiny";  // tiny | small
  std::string model_type = "qwen2_5_vl";  // the family: qwen2_5_vl | qwen2_vl
  std::string tokenizer;        // tokenizer.json or its directory (vocab and special ids)
  std::string output;           // directory to create
  int64_t seed = 0;
  std::string torch_dtype = "float32";
  int64_t threads = 2;
};
void declare(Options& o, ModelInitSettings& s);
void run_model_init(const ModelInitSettings& s);

}  // namespace refract::commands
