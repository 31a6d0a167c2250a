// The model behind the server: tokenizer + processor + Qwen2.5-VL + generate(), one request at
// a time. Torch types stay in engine.cpp (pimpl) so the HTTP layer compiles without torch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model_settings.h"
#include "serve/chat_request.h"

namespace refract::serve {

struct EngineConfig {
  model::ModelSettings model;  // opened with model::open_model, the adapter merged at load
  int64_t max_completion_length = 512;
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

class ChatEngine {
 public:
  explicit ChatEngine(const EngineConfig& config);
  ~ChatEngine();
  ChatEngine(const ChatEngine&) = delete;
  ChatEngine& operator=(const ChatEngine&) = delete;

  // Runs one validated request. Image problems throw ApiError (400); anything else that fails
  // is a refract::Error (the server answers 500).
  ChatResult complete(ChatRequest request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::serve
