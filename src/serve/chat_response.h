// OpenAI response bodies (torch-free): chat.completion, chat.completion.chunk, the model list.
// ref: OpenAI API reference, "The chat completion object" / "The chat completion chunk object" /
// "List models".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::serve {

struct ChatChoice;
struct ChatResult;
struct ChoiceDelta;

// {"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message":
// {"role": "assistant", "content"}, "finish_reason", "logprobs": null | {"content": [...]}}],
// "usage": {...}}. Invalid UTF-8 in a completion (a byte-level token cut mid-character) becomes U+FFFD.
std::string chat_completion_body(const std::string& id, int64_t created, const std::string& model,
                                 const ChatResult& result);

// The fields every chunk of one streamed response repeats.
struct ChunkHeader {
  std::string id;
  int64_t created = 0;
  std::string model;
  bool include_usage = false;  // then every chunk has "usage": null, and usage_chunk ends the stream
  bool logprobs = false;       // then every choice has "logprobs": {"content": [...]} (else null)
};

// One "chat.completion.chunk" with a single choice: the first of each choice has
// delta {"role": "assistant", "content": ""}; content deltas {"content": "..."}; the last
// carries finish_reason (its delta is {} when no text is left).
std::string role_chunk(const ChunkHeader& h, int64_t index);
std::string delta_chunk(const ChunkHeader& h, const ChoiceDelta& d);
// The last chunk with stream_options.include_usage: "choices": [] and the usage.
std::string usage_chunk(const ChunkHeader& h, int64_t prompt_tokens, int64_t completion_tokens);

// Server-Sent Events framing: "data: <payload>\n\n" (the stream ends with "data: [DONE]\n\n").
std::string sse_event(const std::string& payload);

// {"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "refract"}]}
std::string models_body(const std::string& model, int64_t created);

}  // namespace refract::serve
