#include "serve/chat_response.h"

#include <nlohmann/json.hpp>

#include "serve/engine.h"

namespace refract::serve {
using json = nlohmann::json;

std::string chat_completion_body(const std::string& id, int64_t created, const std::string& model,
                                 const ChatResult& result) {
  json choices = json::array();
  for (size_t i = 0; i < result.choices.size(); ++i) {
    const ChatChoice& c = result.choices[i];
    choices.push_back({{"index", i},
                       {"message", {{"role", "assistant"}, {"content", c.text}}},
                       {"finish_reason", c.finish_reason},
                       {"logprobs", nullptr}});
  }
  const json body = {{"id", id},
                     {"object", "chat.completion"},
                     {"created", created},
                     {"model", model},
                     {"choices", choices},
                     {"usage",
                      {{"prompt_tokens", result.prompt_tokens},
                       {"completion_tokens", result.completion_tokens},
                       {"total_tokens", result.prompt_tokens + result.completion_tokens}}}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string models_body(const std::string& model, int64_t created) {
  const json body = {
      {"object", "list"},
      {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "refract"}}})}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace refract::serve
