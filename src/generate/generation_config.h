// Generation settings (no torch: the CLI and the trainers' settings include this).
// Names follow HF GenerationConfig / TRL GRPOConfig; max_new_tokens is TRL's
// max_completion_length.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract {
class Options;
}

namespace refract::generate {

struct GenerationConfig {
  int64_t max_new_tokens = 512;        // = max_completion_length (TRL)
  bool do_sample = true;               // false: greedy
  double temperature = 1.0;            // also divides the logits of the returned log-probs
  double top_p = 1.0;                  // 1.0 = off
  int64_t top_k = 0;                   // 0 = off
  double min_p = 0.0;                  // 0.0 = off
  double repetition_penalty = 1.0;     // 1.0 = off (HF: prompt ids included)
  // Each completion draws from its own generator seeded by (seed, p * G + g): the same call
  // reproduces exactly. note: a trainer must change it every round (e.g. seed + step), or a
  // prompt seen again would get the same samples.
  int64_t seed = 0;
  std::vector<int64_t> stop_token_ids; // eos ids (generation_config.json / tokenizer); kept in output
  std::vector<std::string> stop_strings;  // stop once the completion text contains one (kept)
  int64_t num_generations = 1;         // G samples per prompt, sharing one prefill
  int64_t pad_token_id = -1;           // id fed for padding (-1: the first stop token, else 0)
};

// Registers every key above (for YAML / --flags).
void declare(Options& o, GenerationConfig& c);

enum class FinishReason { kEos, kLength, kStop };
const char* finish_reason_name(FinishReason r);  // "eos" | "length" | "stop"

}  // namespace refract::generate
