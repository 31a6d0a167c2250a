// POST /v1/chat/completions request: parsed and validated before anything touches the model.
// Torch-free, so the validation rules are unit-tested in milliseconds.
// ref: OpenAI API reference, "Create chat completion" (request body).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat_template.h"

namespace refract::serve {

// Server-side bounds a request must stay within.
struct RequestLimits {
  size_t max_body_bytes = 32u << 20;      // 32 MiB (a few base64 images)
  int64_t max_completion_length = 512;    // upper bound (and default) of max_tokens
  int64_t max_n = 16;
  int64_t max_images = 8;
  int64_t max_stop = 4;                   // OpenAI: up to 4 stop sequences
  bool allow_local_files = true;          // image_url may be a local path / file:// URL
};

struct ChatRequest {
  std::string model;                      // echoed back; "" = the served model
  std::vector<text::Message> messages;    // image items reference image_urls by index
  std::vector<std::string> image_urls;    // data: URLs or local paths, in order of appearance
  std::vector<std::string> image_params;  // the field each image came from (for errors)
  double temperature = 1.0;               // 0 = greedy (OpenAI: 0..2)
  double top_p = 1.0;                     // (0, 1]
  int64_t top_k = 0;                      // 0 = off (vLLM extension; -1 also means off)
  double min_p = 0.0;                     // [0, 1] (vLLM extension)
  double repetition_penalty = 1.0;        // > 0 (vLLM extension)
  int64_t max_tokens = 0;                 // 0 = the server's max_completion_length
  int64_t n = 1;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;          // the text is cut before the first one (OpenAI)
};

// Parses and validates the body. Throws ApiError (400) naming the field on any problem:
// body too large, bad JSON, missing / mistyped / out-of-range fields, unknown fields or
// roles, remote image URLs, missing local image files.
ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits);

// Whether `url` points at something outside this machine (http://, https://, ftp://, ...).
// data: URLs, file:// URLs and plain paths are local.
bool is_remote_url(std::string_view url);

}  // namespace refract::serve
