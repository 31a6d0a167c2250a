// Token sampling: a chain of small steps on a logits tensor [B, V], in the order HF
// `generate` applies them (ref: transformers generation/utils.py _get_logits_processor):
//   repetition_penalty -> (do_sample) temperature -> top_k -> top_p -> min_p -> draw
//   repetition_penalty -> (greedy)    argmax
// Each step is a free function so it can be tested on four-token distributions alone.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace refract::generate {

// The sampling part of a GenerationConfig (HF / TRL names and defaults).
struct SamplingConfig {
  bool do_sample = true;            // false: greedy argmax (temperature/top_* ignored, as in HF)
  double temperature = 1.0;         // > 0 when sampling
  int64_t top_k = 0;                // 0 = off (HF's generation default is 50; TRL passes None)
  double top_p = 1.0;               // 1.0 = off
  double min_p = 0.0;               // 0.0 = off
  double repetition_penalty = 1.0;  // 1.0 = off; Qwen2.5-VL's generation_config uses 1.05
};

// Throws refract::Error naming the field when a value is out of range.
void validate(const SamplingConfig& c);

// ---- the steps (logits [B, V] float; each returns a new tensor) ----

// HF RepetitionPenaltyLogitsProcessor: every id present in `token_ids` [B, L] (int64, the
// prompt and what was generated so far) gets its logit divided by `penalty` when > 0 and
// multiplied by it otherwise. Duplicated ids are penalised once.
torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const torch::Tensor& token_ids,
                                       double penalty);
// logits / temperature.
torch::Tensor apply_temperature(const torch::Tensor& logits, double temperature);
// HF TopKLogitsWarper: logits below the k-th largest become -inf (ties with it are kept).
torch::Tensor apply_top_k(const torch::Tensor& logits, int64_t top_k);
// HF TopPLogitsWarper: keep the smallest set of most likely tokens whose probability mass
// reaches top_p (a token is dropped when the mass strictly above it is already >= top_p);
// the most likely token is always kept.
torch::Tensor apply_top_p(const torch::Tensor& logits, double top_p);
// HF MinPLogitsWarper: drop tokens whose probability is below min_p x the top probability.
torch::Tensor apply_min_p(const torch::Tensor& logits, double min_p);

// Draws one id per row from softmax(logits) by inverse CDF, with one uniform number per row
// taken from that row's own generator (so a row's draw does not depend on the other rows of
// the batch, nor on the device). Returns int64 [B] on the logits' device.
torch::Tensor draw_from_logits(const torch::Tensor& logits, std::vector<at::Generator>& generators);

// A CPU generator seeded deterministically from (seed, stream): distinct streams give
// independent sequences; the same pair always gives the same sequence.
at::Generator make_generator(uint64_t seed, uint64_t stream);

struct SampleOutput {
  torch::Tensor ids;       // int64 [B]
  torch::Tensor logprobs;  // float [B]
};

// Runs the chain on `logits` [B, V] (the model's raw next-token logits).
// `history` [B, L] int64 holds the ids seen so far per row (prompt + completion; only read
// when repetition_penalty != 1). `generators` has one entry per row (only read when sampling).
//
// Log-prob convention (TRL's, so GRPO's old/ref log-probs agree with what is returned here):
// logprob = log_softmax(raw_logits / T)[id] over the FULL vocabulary: no repetition penalty,
// no top-k/top-p/min-p truncation (TRL recomputes log-probs from the model's logits divided
// by the temperature). T = temperature when sampling, 1 for greedy.
SampleOutput sample_next(const torch::Tensor& logits, const torch::Tensor& history,
                         const SamplingConfig& config, std::vector<at::Generator>& generators);

}  // namespace refract::generate
