#include "serve/chat_response.h"

#include <nlohmann/json.hpp>

#include "serve/engine.h"

namespace refract::serve {
using json = nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ref: OpenAI ChatCompletionTokenLogprob: token, logprob, bytes (the UTF-8 bytes of the token:
// a character split over tokens is rebuilt by joining them), top_logprobs.
json token_json(const LogprobToken& t) {
  json bytes = json::array();
  for (unsigned char c : t.bytes) bytes.push_back(static_cast<int>(c));
  return {{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes}};
}

json logprobs_json(const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const LogprobEntry& e : entries) {
    json j = token_json(e);
    json top = json::array();
    for (const LogprobToken& t : e.top_logprobs) top.push_back(token_json(t));
    j["top_logprobs"] = top;
    content.push_back(j);
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json chunk_json(const ChunkHeader& h, json choices) {
  json j = {{"id", h.id}, {"object", "chat.completion.chunk"}, {"created", h.created}, {"model", h.model},
            {"choices", std::move(choices)}};
  if (h.include_usage) j["usage"] = nullptr;
  return j;
}

}  // namespace

std::string chat_completion_body(const std::string& id, int64_t created, const std::string& model,
                                 const ChatResult& result) {
  json choices = json::array();
  for (size_t i = 0; i < result.choices.size(); ++i) {
    const ChatChoice& c = result.choices[i];
    choices.push_back({{"index", i},
                       {"message", {{"role", "assistant"}, {"content", c.text}}},
                       {"finish_reason", c.finish_reason},
                       {"logprobs", result.logprobs ? logprobs_json(c.logprobs) : json(nullptr)}});
  }
  const json body = {{"id", id},
                     {"object", "chat.completion"},
                     {"created", created},
                     {"model", model},
                     {"choices", choices},
                     {"usage", usage_json(result.prompt_tokens, result.completion_tokens)}};
  return dump(body);
}

std::string role_chunk(const ChunkHeader& h, int64_t index) {
  json choice = {{"index", index},
                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                 {"logprobs", nullptr},
                 {"finish_reason", nullptr}};
  return dump(chunk_json(h, json::array({choice})));
}

std::string delta_chunk(const ChunkHeader& h, const ChoiceDelta& d) {
  json delta = json::object();
  if (!d.content.empty() || d.finish_reason.empty()) delta["content"] = d.content;
  json choice = {{"index", d.index},
                 {"delta", delta},
                 {"logprobs", h.logprobs ? logprobs_json(d.logprobs) : json(nullptr)},
                 {"finish_reason", d.finish_reason.empty() ? json(nullptr) : json(d.finish_reason)}};
  return dump(chunk_json(h, json::array({choice})));
}

std::string usage_chunk(const ChunkHeader& h, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = chunk_json(h, json::array());
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return dump(j);
}

std::string sse_event(const std::string& payload) { return "data: " + payload + "\n\n"; }

std::string models_body(const std::string& model, int64_t created) {
  const json body = {
      {"object", "list"},
      {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "refract"}}})}};
  return dump(body);
}

}  // namespace refract::serve
