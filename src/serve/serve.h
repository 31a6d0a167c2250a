// `refract serve`: an OpenAI-compatible chat completions server for one model (torch-free header).
//   GET  /health               -> {"status": "ok"}
//   GET  /v1/models            -> the served model
//   POST /v1/chat/completions  -> OpenAI chat.completion (text + image_url content parts)
// Requests are validated (400 + OpenAI error JSON naming the field) and then run one
// generation at a time.
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
  int64_t max_body_mb = 32;             // request body limit
  bool allow_local_files = true;        // image_url may name a local file
};
void declare(Options& o, ServeSettings& s);

// Loads the model and serves until the process is stopped (SIGINT / SIGTERM).
void run_serve(const ServeSettings& s);

}  // namespace refract::serve
