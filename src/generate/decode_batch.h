// Continuous batching: a decode batch that requests join and leave between steps.
//
// generate() decodes a fixed set of prompts to the end. A server gets requests at any time; here
// each one is prefilled on its own when it arrives and its rows join the running batch at the
// next step; every step decodes all rows at once (one forward of [rows, 1]); a row that
// finishes leaves at once. Each row keeps its own settings (temperature, top_p, top_k, min_p,
// repetition_penalty, seed, stop, max_new_tokens) and its own random stream, so a seeded
// request gives the same completion alone or in a batch.
//
// Joining rows of another length: the cache is one [rows, kv_heads, positions, head_dim] block
// whose rows are right-aligned (left padding masked out). A prompt shorter than the batch's
// length is padded on the left; a longer one pads the running rows instead (their cache moves
// right; the cache is rebuilt at each join). Stored K already carry RoPE, so moving positions
// only needs rope_deltas lowered by the shift (decode position = cache position + rope_delta).
// Leading columns that no row uses any more are dropped when rows leave.
// ref: vLLM's scheduler (iteration-level scheduling, Orca OSDI'22); HF's left-padded batches.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "generate/sampling.h"
#include "model/kv_cache.h"

namespace refract::model {
class Qwen2_5_VLImpl;
}

namespace refract::generate {

// The settings of one request's rows.
struct RowConfig {
  SamplingConfig sampling;
  int64_t seed = 0;                     // row g draws from make_generator(seed, first_stream + g)
  int64_t first_stream = 0;             // generate() gives prompt p of a call the streams p * G + g
  int64_t max_new_tokens = 16;
  std::vector<int64_t> stop_token_ids;  // eos ids (kept in the completion)
  std::vector<std::string> stop_strings;
  int64_t top_logprobs = -1;            // >= 0: record Completion::raw_logprobs
};

class DecodeBatch {
 public:
  // Called when a row gets a token: generation index g, the completion so far (its last id is
  // the new token), whether it is finished (then its finish_reason is final and the row left).
  using TokenCallback = std::function<void(int64_t g, const Completion& c, bool finished)>;

  // `decode` turns ids into text (needed for stop strings).
  DecodeBatch(model::Qwen2_5_VLImpl& model, std::function<std::string(const std::vector<int64_t>&)> decode);

  // ---- requests -------------------------------------------------------------------------------
  // Prefills `prompt` (vision tower included) and adds num_generations rows for it that share
  // the prefill; they decode from the next step(). Returns the request's id.
  int64_t add(const PromptInput& prompt, const RowConfig& config, int64_t num_generations, TokenCallback on_token);
  // Drops every row of request `id` that is still running (a cancelled request).
  void remove(int64_t id);

  // ---- decoding -------------------------------------------------------------------------------
  // One token for every row: each samples from its logits with its own settings; rows that
  // finish leave; the rest run one forward together.
  void step();
  int64_t rows() const { return static_cast<int64_t>(rows_.size()); }
  bool empty() const { return rows_.empty(); }
  int64_t length() const { return cache_.length(); }  // cache positions (padding included)
  int64_t decode_steps() const { return decode_steps_; }

 private:
  struct Row {
    int64_t request = 0;
    int64_t g = 0;
    const RowConfig* config = nullptr;
    Completion completion;
    std::vector<at::Generator> generator;  // one (sampling), or none (greedy)
    std::vector<int64_t> history;          // prompt + completion ids (repetition penalty only)
    size_t max_stop_bytes = 0;
  };
  struct Request {
    int64_t id = 0;
    RowConfig config;
    TokenCallback on_token;
  };
  void keep_rows(const std::vector<int64_t>& keep);
  void trim_front();
  int64_t needed_capacity(int64_t length) const;

  model::Qwen2_5_VLImpl& model_;
  std::function<std::string(const std::vector<int64_t>&)> decode_;
  model::KVCache cache_;
  torch::Tensor mask_;    // [rows, capacity] int64: 0 = left padding
  torch::Tensor logits_;  // [rows, V] next-token logits of every row
  bool padded_ = false;   // some row has left padding (the mask is needed)
  std::vector<Row> rows_;
  std::vector<std::unique_ptr<Request>> requests_;
  int64_t next_id_ = 0;
  int64_t decode_steps_ = 0;
};

// One prompt of decode_all: its rows' settings and how many completions it wants.
struct DecodeRequest {
  PromptInput prompt;
  RowConfig config;
  int64_t num_generations = 1;
};

// Runs `count` requests through one DecodeBatch: request r is made by make(r) (in order, only
// when it is admitted, so its images are held only until its prefill) and joins as soon as the
// batch has room for its rows (at most max_num_seqs rows at once; one request is always
// admitted): a long completion never holds back the others as a fixed batch does. Returns the
// completions per request (out[r][g], prompt_index = r). With config.first_stream = p * G and a
// common seed, sampled completions equal those generate() gives for the same prompts in one call.
std::vector<std::vector<Completion>> decode_all(model::Qwen2_5_VLImpl& model, size_t count,
                                                const std::function<DecodeRequest(size_t)>& make, int64_t max_num_seqs,
                                                std::function<std::string(const std::vector<int64_t>&)> decode = {});

}  // namespace refract::generate
