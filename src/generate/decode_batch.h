// Continuous batching: a decode batch that requests join and leave between steps.
//
// generate() decodes a fixed set of prompts to the end. A server gets requests at any time; here
// the requests that arrive between two steps are prefilled together (one left-padded batch, the
// vision tower over all their images at once: prefill_batch) and their rows join the running
// batch at the next step; every step decodes all rows at once (one forward of [rows, 1]). Each
// row keeps its own settings (temperature, top_p, top_k, min_p, repetition_penalty, seed, stop,
// max_new_tokens) and its own random stream, so a seeded request gives the same completion
// alone or in a batch.
//
// Joining rows of another length: the cache is one [rows, kv_heads, positions, head_dim] block
// whose rows are right-aligned (left padding masked out). Shorter prompts are padded on the
// left; a longer one pads the running rows instead (their cache moves right). A join copies
// the cache once (the running rows that are still live, the new rows after them, leading
// columns no row uses dropped). Stored K already carry RoPE, so moving positions only needs
// rope_deltas lowered by the shift (decode position = cache position + rope_delta).
// A finished row leaves the batch's bookkeeping at once (its callback says finished; it no
// longer counts in rows()), but its cache row is dropped lazily, as generate() compacts: at the
// next join, or once dead rows are a quarter of the batch, since each drop copies the cache.
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
  // One request to add: num_generations rows sharing one prefill of `prompt` (which is read
  // during add() only).
  struct NewRequest {
    const PromptInput* prompt = nullptr;
    RowConfig config;
    int64_t num_generations = 1;
    TokenCallback on_token;
  };
  // Prefills the prompts together (left-padded batches, the vision tower over all their images
  // at once; prompts of very different lengths go in separate batches, so a short one does not
  // compute a long one's length) and adds their rows in one join (one cache copy, none into an
  // empty batch); they decode from the next step(). Returns the requests' ids, in order.
  // Nothing changes when it throws.
  std::vector<int64_t> add(const std::vector<NewRequest>& requests);
  // One request (the same as add({...})).
  int64_t add(const PromptInput& prompt, const RowConfig& config, int64_t num_generations, TokenCallback on_token);
  // Drops every row of request `id` that is still running (a cancelled request).
  void remove(int64_t id);

  // ---- decoding -------------------------------------------------------------------------------
  // One token for every row: each samples from its logits with its own settings; rows that
  // finish leave; the rest run one forward together.
  void step();
  int64_t rows() const { return live_; }  // rows still generating
  bool empty() const { return live_ == 0; }
  int64_t length() const { return cache_.length(); }  // cache positions (padding included)
  int64_t decode_steps() const { return decode_steps_; }
  int64_t joins() const { return joins_; }            // add() calls that prefilled (one cache copy each)
  int64_t compactions() const { return compactions_; }  // cache copies that only dropped rows

  // Dead rows are dropped once they are this fraction of the batch (1 = only at joins).
  double compact_fraction = 0.25;

 private:
  struct Request {
    int64_t id = 0;
    RowConfig config;
    TokenCallback on_token;
  };
  struct Row {
    Request* request = nullptr;
    int64_t g = 0;
    bool done = false;  // finished or removed: its cache row waits to be dropped
    Completion completion;
    std::vector<at::Generator> generator;  // one (sampling), or none (greedy)
    std::vector<int64_t> history;          // prompt + completion ids (repetition penalty only)
    size_t max_stop_bytes = 0;
  };
  void keep_rows(const std::vector<int64_t>& keep);
  void compact();
  std::vector<int64_t> live_rows() const;
  int64_t needed_capacity(int64_t length) const;

  model::Qwen2_5_VLImpl& model_;
  std::function<std::string(const std::vector<int64_t>&)> decode_;
  model::KVCache cache_;
  torch::Tensor mask_;    // [rows, capacity] int64: 0 = left padding
  torch::Tensor logits_;  // [rows, V] next-token logits of every row
  bool padded_ = false;   // some row has left padding (the mask is needed)
  std::vector<Row> rows_;  // cache row r = rows_[r], live or done
  int64_t live_ = 0;
  std::vector<std::unique_ptr<Request>> requests_;
  int64_t next_id_ = 0;
  int64_t decode_steps_ = 0;
  int64_t joins_ = 0;
  int64_t compactions_ = 0;
};

// One prompt of decode_all: its rows' settings and how many completions it wants.
struct DecodeRequest {
  PromptInput prompt;
  RowConfig config;
  int64_t num_generations = 1;
};

// Runs `count` requests through one DecodeBatch: request r is made by make(r) (in order, only
// when it is admitted, so its images are held only until its prefill). Requests join in groups,
// prefilled together: when the batch is empty, or when at least join_rows rows are free (fewer
// when fewer are still wanted), as many as fit in max_num_seqs rows (one request is always
// admitted). So a long completion never holds back the others as a fixed batch does, and a join
// (a prefill call and a cache copy) is paid per group, not per prompt. join_rows 0 = a quarter
// of max_num_seqs. Returns the completions per request (out[r][g], prompt_index = r). With
// config.first_stream = p * G and a common seed, sampled completions equal those generate()
// gives for the same prompts in one call.
std::vector<std::vector<Completion>> decode_all(model::Qwen2_5_VLImpl& model, size_t count,
                                                const std::function<DecodeRequest(size_t)>& make, int64_t max_num_seqs,
                                                std::function<std::string(const std::vector<int64_t>&)> decode = {},
                                                int64_t join_rows = 0);

}  // namespace refract::generate
