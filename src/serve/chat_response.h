// OpenAI response bodies (torch-free): chat.completion, the model list.
// ref: OpenAI API reference, "The chat completion object" / "List models".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::serve {

struct ChatChoice;
struct ChatResult;

// {"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message":
// {"role": "assistant", "content"}, "finish_reason", "logprobs": null}], "usage": {...}}.
// Invalid UTF-8 in a completion (a byte-level token cut mid-character) becomes U+FFFD.
std::string chat_completion_body(const std::string& id, int64_t created, const std::string& model,
                                 const ChatResult& result);

// {"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "refract"}]}
std::string models_body(const std::string& model, int64_t created);

}  // namespace refract::serve
