// `refract infer`: one prompt (with images) through the rollout engine, completion printed.
// No torch types here: the CLI includes this header.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "generate/generation_config.h"

namespace refract {
class Options;
}

namespace refract::generate {

struct InferSettings {
  std::string model;                 // HF-layout directory (config.json, safetensors, tokenizer.json)
  std::string adapter;               // optional PEFT LoRA directory
  std::string tokenizer;             // default: the model directory
  std::vector<std::string> image;    // image files, shown before the prompt text
  std::string prompt;                // the user's text
  std::string system;                // optional system message (default: Qwen's)
  std::string device = "cpu";
  std::string torch_dtype = "auto";
  int64_t threads = 2;
  int64_t min_pixels = 3136;
  int64_t max_pixels = 12845056;
  GenerationConfig generation;       // do_sample defaults to false here (greedy)
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

}  // namespace refract::generate
