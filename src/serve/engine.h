// The model behind the server: tokenizer + processor + Qwen2.5-VL + a continuous-batching
// scheduler (generate::DecodeBatch on its own thread). A request is prepared (images decoded and
// preprocessed, chat template applied, lengths checked) without the model, concurrently; then
// run: it joins the running batch at the next decode step and leaves when it is done. Torch types stay in engine.cpp (pimpl) so
// the HTTP layer compiles without torch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model_settings.h"
#include "serve/chat_request.h"
#include "serve/request_images.h"

namespace refract::serve {

struct EngineConfig {
  model::ModelSettings model;  // opened with model::open_model, the adapter merged at load
  int64_t max_completion_length = 512;
  int64_t max_model_len = 8192;  // prompt tokens (image tokens expanded) + max_tokens
  int64_t max_num_seqs = 16;     // rows (completions) decoded together; more requests wait (vLLM name)
  MediaLimits media;
};

// OpenAI chat logprobs: one entry per generated token (eos included, as in completion_tokens).
// Log-probs of the model's raw distribution (log_softmax of the logits over the vocabulary,
// before temperature, penalties and top-k/top-p/min-p: vLLM's default).
struct LogprobToken {
  std::string token;  // the token's bytes as text, or "token_id:N" (return_tokens_as_token_ids)
  std::string bytes;  // the token's bytes (may be part of a UTF-8 character)
  float logprob = 0;
};
struct LogprobEntry : LogprobToken {
  std::vector<LogprobToken> top_logprobs;  // `top_logprobs` alternatives, most likely first
};

struct ChatChoice {
  std::string text;                // decoded completion, eos dropped, cut before a stop string
  std::string finish_reason;       // "stop" (eos or stop string) | "length"
  std::vector<int64_t> token_ids;  // generated ids (eos / stop token included)
  std::vector<LogprobEntry> logprobs;  // when the request asked for logprobs
};

// What a streamed choice gained at one decode step (the concatenation of a choice's
// `content` over its deltas equals ChatChoice::text).
struct ChoiceDelta {
  int64_t index = 0;
  std::string content;                 // may be "" (bytes held back, see DeltaText)
  std::vector<LogprobEntry> logprobs;  // of the tokens generated at this step (when asked)
  std::string finish_reason;           // "" until the choice's last delta
};
using DeltaSink = std::function<void(const ChoiceDelta&)>;

struct ChatResult {
  bool logprobs = false;  // the choices carry logprobs
  std::vector<ChatChoice> choices;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // sum over choices, eos included (as vLLM counts)
};

// A request ready for the model (opaque: holds the prompt ids and pixel tensors).
struct PreparedChat;

// Thrown out of ChatEngine::run when its `cancelled` hook says so (at a decode step).
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

class ChatEngine {
 public:
  explicit ChatEngine(const EngineConfig& config);
  ~ChatEngine();
  ChatEngine(const ChatEngine&) = delete;
  ChatEngine& operator=(const ChatEngine&) = delete;

  // Decodes and preprocesses the images and tokenizes the prompt; checks max_model_len
  // (ApiError 400 naming `messages` or `max_tokens`). Thread-safe: needs no model lock.
  std::shared_ptr<PreparedChat> prepare(ChatRequest request) const;
  int64_t prompt_tokens(const PreparedChat& p) const;

  // Generates: blocks until the request's completions are done, while other callers' requests
  // share the decode steps (thread-safe). `cancelled` is asked every 50 ms; when it says true
  // the request leaves the batch at the next step and run throws Cancelled. Failures other than
  // the client's are refract::Error (500). `on_delta` (streaming) gets each choice's new text as
  // soon as it is decoded, in the caller's thread.
  ChatResult run(const PreparedChat& p, const std::function<bool()>& cancelled = {}, const DeltaSink& on_delta = {});

  // prepare + run.
  ChatResult complete(ChatRequest request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::serve
