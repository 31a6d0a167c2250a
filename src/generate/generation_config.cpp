#include "generate/generation_config.h"

#include "common/options.h"

namespace refract::generate {

void declare(Options& o, GenerationConfig& c) {
  o.add("max_new_tokens", &c.max_new_tokens,
        "maximum tokens generated per completion (TRL: max_completion_length)");
  o.add("do_sample", &c.do_sample, "sample (true) or greedy argmax (false)");
  o.add("temperature", &c.temperature, "softmax temperature (> 0 when sampling)");
  o.add("top_p", &c.top_p, "nucleus sampling mass (1.0 = off)");
  o.add("top_k", &c.top_k, "keep the k most likely tokens (0 = off)");
  o.add("min_p", &c.min_p, "drop tokens below min_p x the top probability (0 = off)");
  o.add("repetition_penalty", &c.repetition_penalty,
        "HF repetition penalty over prompt and completion ids (1.0 = off)");
  o.add("seed", &c.seed, "sampling seed (each completion has its own stream)");
  o.add("stop_token_ids", &c.stop_token_ids,
        "ids that end a completion (default: eos ids of the model's generation_config.json)");
  o.add("stop_strings", &c.stop_strings, "strings that end a completion (kept in the output)");
  o.add("num_generations", &c.num_generations, "completions per prompt (G), sharing one prefill");
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
  }
  return "?";
}

}  // namespace refract::generate
