// POST /v1/chat/completions request: parsed and validated before anything touches the model.
// Torch-free, so the validation rules are unit-tested in milliseconds.
// ref: OpenAI API reference, "Create chat completion" (request body).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/chat_template.h"

namespace refract::serve {

// Server-side bounds a request must stay within.
struct RequestLimits {
  size_t max_body_bytes = 32u << 20;      // 32 MiB (a few base64 images)
  int64_t max_completion_length = 512;    // upper bound (and default) of max_tokens
  int64_t max_n = 16;
  int64_t max_images = 8;
  int64_t max_videos = 2;
  int64_t max_stop = 4;                   // OpenAI: up to 4 stop sequences
  int64_t max_json_depth = 64;            // nesting of the body (a nesting bomb costs memory)
  int64_t max_json_values = 100000;       // values in the body ([0,0,0,...] costs 16 bytes each)
  // Local image files: "" = none (the default). Otherwise the canonical real path of the one
  // directory whose files (real path, symlinks resolved, lying under it) image_url may name.
  std::string allowed_local_media_path;
  // The served model's id: a request naming another model is 404 model_not_found ("" = any).
  std::string served_model_name;
};

struct ChatRequest {
  std::string model;                      // echoed back; "" = the served model
  std::vector<text::Message> messages;    // image items reference image_urls by index
  std::vector<std::string> image_urls;    // data: URLs or canonical local paths (under the allowed dir)
  std::vector<std::string> image_params;  // the field each image came from (for errors)
  // Videos ({"type": "video_url", "video_url": {"url"}} as vLLM), like images, and their
  // qwen-vl-utils sampling keys given in the part (fps, max_frames, max_pixels, ...).
  std::vector<std::string> video_urls;
  std::vector<std::string> video_params;
  std::vector<nlohmann::json> video_items;
  double temperature = 1.0;               // 0 = greedy (OpenAI: 0..2)
  double top_p = 1.0;                     // (0, 1]
  int64_t top_k = 0;                      // 0 = off (vLLM extension; -1 also means off)
  double min_p = 0.0;                     // [0, 1] (vLLM extension)
  double repetition_penalty = 1.0;        // > 0 (vLLM extension)
  int64_t max_tokens = 0;                 // 0 = the server's max_completion_length
  int64_t n = 1;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;          // the text is cut before the first one (OpenAI)
  bool stream = false;                    // Server-Sent Events (chat.completion.chunk)
  bool include_usage = false;             // stream_options.include_usage: a last chunk with usage
  bool logprobs = false;                  // choices[].logprobs.content
  int64_t top_logprobs = 0;               // 0..20 alternatives per token (needs logprobs)
  bool return_tokens_as_token_ids = false;  // vLLM: logprobs tokens as "token_id:N"
};

// Parses and validates the body. Throws ApiError (400) naming the field on any problem:
// body too large (413), bad JSON (numbers out of range included), missing / mistyped /
// out-of-range fields, unknown fields or roles, remote image URLs, local files when they are
// not allowed or not under the allowed directory (one message whatever the reason: it never
// tells whether a path exists), an unknown model (404 model_not_found).
// Local paths are resolved here (realpath, no file is opened); the file is opened later with
// open_local_media(), which re-checks that it lies under the allowed directory.
ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits);

// Whether `url` points at something outside this machine (http://, https://, ftp://, ...).
// data: URLs, file:// URLs and plain paths are local.
bool is_remote_url(std::string_view url);

// The canonical real path of `dir` for RequestLimits::allowed_local_media_path; throws
// refract::Error naming the setting when it is not an existing directory.
std::string canonical_media_dir(const std::string& dir);

// Reads a local image file resolved by parse_chat_request: opened with openat2(RESOLVE_BENEATH)
// relative to the allowed directory (no path that escapes it, by `..` or a symlink, is ever
// opened), non-blocking (a FIFO cannot hang the server), regular files only, at most
// `max_bytes`. Throws ApiError 400 naming `param` with one message whatever went wrong.
std::string read_local_media(const std::string& path, const std::string& allowed_dir, size_t max_bytes,
                             const std::string& param);

}  // namespace refract::serve
