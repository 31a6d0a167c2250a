// `refract serve`: an OpenAI-compatible chat completions server for one model (torch-free header).
//   GET  /health               -> {"status": "ok"}
//   GET  /v1/models            -> the served model
//   POST /v1/chat/completions  -> OpenAI chat.completion (text + image_url content parts)
// Safe by default: loopback only, no local files, every size bounded (docs/serve.md). Requests
// are validated and their images decoded concurrently (400 / 413 + OpenAI error JSON naming the
// field), then decoded together (continuous batching) behind a bounded queue.
#pragma once
#include <cstdint>
#include <string>

#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::serve {

// The model settings (model_name_or_path, adapter merged at load, device, ...) and the server's.
struct ServeSettings : model::ModelSettings {
  std::string served_model_name;        // id reported by /v1/models ("" = the model directory's name)
  std::string host = "127.0.0.1";       // loopback by default: nothing is exposed unless asked
  int64_t port = 8000;
  int64_t max_completion_length = 512;  // default and upper bound of max_tokens (TRL name)
  int64_t max_num_completions = 16;     // upper bound of n
  int64_t max_images = 8;               // per request
  int64_t max_videos = 2;               // per request (video_url parts)
  int64_t max_body_mb = 32;             // request body limit (Content-Length and chunked alike)
  int64_t max_model_len = 8192;         // prompt tokens (images expanded) + max_tokens (vLLM name)
  int64_t max_image_pixels = 4096 * 4096;  // decoded width * height, checked on the header
  std::string allowed_local_media_path; // image files allowed under this directory only ("" = none)
  std::string api_key;                  // Bearer key for /v1/* ("" = env REFRACT_API_KEY, else none)
  bool allow_unauthenticated = false;   // a non-loopback host without api_key starts only with this
  int64_t max_queued_requests = 8;      // requests admitted at once (decoding, waiting, generating)
  double request_timeout = 300;         // seconds from arrival to the end of generation
  int64_t read_timeout = 30;            // seconds a connection may stay silent (read / write)
  int64_t max_connections = 64;         // connections served at once (worker threads)
  int64_t max_num_seqs = 16;            // completions decoded together (continuous batching; vLLM name)
};
void declare(Options& o, ServeSettings& s);

// Loads the model and serves until the process is stopped (SIGINT / SIGTERM).
void run_serve(const ServeSettings& s);

}  // namespace refract::serve
