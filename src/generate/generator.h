// The rollout engine: batched KV-cache generation for Qwen2.5-VL.
//
// One call generates num_generations (G) completions for each of P prompts:
//   1. left-pad the P prompts and PREFILL them once (vision tower included), logits of the
//      last position only;
//   2. repeat each prompt's cache rows G times (GRPO: G samples share one prefill);
//   3. decode all P*G rows together, one token per step, in a cache allocated once
//      (capacity = longest prompt + max_new_tokens);
//   4. rows that finished (eos / stop string / length) are dropped from the batch (the cache
//      rows are compacted) once a quarter of the batch is dead, so they stop costing compute.
// ref: transformers GenerationMixin._sample (same maths; HF keeps finished rows and feeds pad).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate/generation_config.h"
#include "generate/sampling.h"
#include "model/kv_cache.h"

namespace refract::model {
class Qwen2_5_VLImpl;
}

namespace refract::generate {

// One prompt: token ids (image pads already expanded, as the processor does) and the
// preprocessed images it references, in order of appearance.
struct PromptInput {
  std::vector<int64_t> input_ids;
  torch::Tensor pixel_values;    // [N, 1176] float; undefined when the prompt has no image
  torch::Tensor image_grid_thw;  // [I, 3] int64
  // Videos, as model::ModelInputs names them (undefined when the prompt has no video).
  torch::Tensor pixel_values_videos;  // [N, 1176] float
  torch::Tensor video_grid_thw;       // [V, 3] int64
  torch::Tensor second_per_grid_ts;   // [V] float (Qwen2.5-VL)
};

// A token's log-prob under the model's raw distribution (log_softmax of the logits over the
// full vocabulary: no temperature, penalty or truncation; what vLLM's OpenAI server returns).
struct TokenLogprob {
  int64_t id = 0;
  float logprob = 0;
};
struct RawLogprobs {
  float logprob = 0;              // of the generated token
  std::vector<TokenLogprob> top;  // the top_logprobs most likely tokens, most likely first
};

struct Completion {
  int64_t prompt_index = 0;      // index into the prompts given to generate()
  int64_t generation_index = 0;  // 0..G-1
  std::vector<int64_t> ids;      // completion tokens; the eos / stop token is kept (TRL masks up to and including it)
  std::vector<float> logprobs;   // log_softmax(logits / T)[id] per token (see sample_next)
  FinishReason finish_reason = FinishReason::kLength;
  torch::Tensor step_logits;     // [n, V] raw logits per step (only with record_step_logits)
  std::vector<RawLogprobs> raw_logprobs;  // per token (only with GenerateOptions::top_logprobs >= 0)
};

struct GenerationStats {
  int64_t prompt_tokens = 0;     // prefill rows x padded length
  int64_t generated_tokens = 0;  // sum of completion lengths
  int64_t decode_steps = 0;      // forward_decode calls
  int64_t decoded_rows = 0;      // sum over steps of the batch rows computed (compaction saves these)
  int64_t compactions = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;     // decode forwards + sampling
  // Process CPU time (all threads) of the same phases: robust to a shared, loaded machine.
  double prefill_cpu_seconds = 0;
  double decode_cpu_seconds = 0;
};

struct GenerationResult {
  std::vector<Completion> completions;  // prompt-major: completions[p * G + g]
  GenerationStats stats;
};

struct GenerateOptions {
  // Text of token ids (e.g. Tokenizer::decode); required when stop_strings is not empty.
  std::function<std::string(const std::vector<int64_t>&)> decode;
  // Compact the batch once finished rows reach this fraction of it (1 = never).
  double compact_fraction = 0.25;
  bool record_step_logits = false;  // tests / debugging: keep every step's raw logits
  // Optional, one per prompt: completion g of prompt p draws from random stream
  // prompt_streams[p] * G + g instead of p * G + g. A data-parallel rank generating prompts
  // [p0, p1) of a round passes their round indices, so it samples what one process would.
  std::vector<int64_t> prompt_streams;
  // Called before every decode step (not before the prefill). It may throw to abandon the
  // generation, e.g. when a server's client has gone away or its deadline has passed.
  std::function<void()> before_step;
  // >= 0: record Completion::raw_logprobs with this many alternatives per token (-1 = off).
  int64_t top_logprobs = -1;
  // Called as soon as a completion gets a token (streaming): completion index, the completion
  // (its last id is the new token; finish_reason is final when `finished`).
  std::function<void(int64_t index, const Completion& c, bool finished)> on_token;
};

// Generates completions. Runs under NoGradGuard on the model's device and dtype; does not
// change the module's train/eval mode (call model.eval() for dropout-free rollouts).
GenerationResult generate(model::Qwen2_5_VLImpl& model, const std::vector<PromptInput>& prompts,
                          const GenerationConfig& config, const GenerateOptions& options = {});

// Prompts prefilled together as one left-padded batch [P, length] (the vision tower runs once
// over all their images): the cache holds positions [0, length) of every row, logits are those
// of each row's last position. generate() and DecodeBatch (the serving engine) both prefill here.
struct PrefilledBatch {
  model::KVCache cache;       // P rows, `capacity` positions, `length` filled; rope_deltas set
  torch::Tensor logits;       // [P, V] next-token logits (model dtype)
  torch::Tensor prompt_mask;  // [P, length] int64 on the CPU: 0 = left padding
  int64_t length = 0;         // the longest prompt
  bool padded = false;        // some prompt is shorter than `length`
};
// capacity >= the longest prompt (0 = exactly it); pad_id fills the left padding.
PrefilledBatch prefill_batch(model::Qwen2_5_VLImpl& model, const std::vector<PromptInput>& prompts, int64_t pad_id,
                             int64_t capacity = 0);

// Raw-distribution log-probs (see RawLogprobs) of `ids` [B] under `logits` [B, V], with the
// top_logprobs most likely alternatives of each row.
std::vector<RawLogprobs> raw_logprobs(const torch::Tensor& logits, const torch::Tensor& ids, int64_t top_logprobs);

// Whether the text of a completion contains a stop string ending in its newest token (earlier
// ends were caught at earlier steps); only the tail of at most max_stop_bytes + 3 tokens is
// decoded (a match of m bytes spans at most m tokens; 3 more absorb split UTF-8 sequences).
bool hits_stop_string(const std::vector<int64_t>& ids, const std::vector<std::string>& stops, size_t max_stop_bytes,
                      const std::function<std::string(const std::vector<int64_t>&)>& decode);

// Completions as right-padded tensors for the trainer (TRL layout):
// completion_ids [N, T] (pad_token_id after the end), completion_mask [N, T] (1 up to and
// including eos), old logprobs [N, T] (0 where masked). T = longest completion.
struct PaddedCompletions {
  torch::Tensor completion_ids;
  torch::Tensor completion_mask;
  torch::Tensor logprobs;
};
PaddedCompletions pad_completions(const std::vector<Completion>& completions, int64_t pad_token_id,
                                  torch::Device device = torch::kCPU);

}  // namespace refract::generate
