// The model behind the server: tokenizer + processor + Qwen2.5-VL + generate(). A request is
// prepared (images decoded and preprocessed, chat template applied, lengths checked) without
// the model, concurrently; then run, one at a time. Torch types stay in engine.cpp (pimpl) so
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
  MediaLimits media;
};

struct ChatChoice {
  std::string text;                // decoded completion, eos dropped, cut before a stop string
  std::string finish_reason;       // "stop" (eos or stop string) | "length"
  std::vector<int64_t> token_ids;  // generated ids (eos / stop token included)
};

struct ChatResult {
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

  // Generates (one caller at a time). `cancelled` is asked at every decode step; when it says
  // true, run throws Cancelled. Failures other than the client's are refract::Error (500).
  ChatResult run(const PreparedChat& p, const std::function<bool()>& cancelled = {});

  // prepare + run.
  ChatResult complete(ChatRequest request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::serve
