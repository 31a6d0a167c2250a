// Fuzzes the POST /v1/chat/completions parser and the streamed-text splitter: any body must be
// accepted or rejected with an ApiError (never another exception, a crash or an out-of-bounds
// read), what is accepted must respect the limits, and the deltas of any text must join to its
// content.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/delta_text.h"

using namespace refract::serve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  RequestLimits limits;
  limits.max_body_bytes = 1 << 20;
  limits.max_completion_length = 64;
  limits.max_n = 4;
  limits.max_images = 2;
  limits.served_model_name = "m";  // no allowed_local_media_path: no file is ever looked at
  try {
    const ChatRequest r = parse_chat_request(body, limits);
    if (r.messages.empty() || r.n < 1 || r.n > limits.max_n) std::abort();
    if (r.max_tokens < 0 || r.max_tokens > limits.max_completion_length) std::abort();
    if (int64_t(r.image_urls.size()) > limits.max_images || r.image_urls.size() != r.image_params.size()) std::abort();
    if (r.top_logprobs < 0 || r.top_logprobs > 20 || (r.top_logprobs > 0 && !r.logprobs)) std::abort();
    if (r.include_usage && !r.stream) std::abort();
    for (const std::string& url : r.image_urls)
      if (is_remote_url(url) || url.rfind("data:", 0) != 0) std::abort();  // local files are off
    if (!(r.temperature >= 0 && r.temperature <= 2) || !(r.top_p > 0 && r.top_p <= 1)) std::abort();

    // Stream the body text itself in pieces of varying size against the request's stops.
    DeltaText d(r.stop);
    std::string streamed;
    const std::string content = d.content(body);
    size_t end = 0, step = 1;
    while (end < body.size()) {
      end = std::min(body.size(), end + step);
      step = step % 7 + 1;
      const std::string text = body.substr(0, end);
      if (d.content(text) != text) break;
      streamed += d.update(text);
    }
    streamed += d.finish(body.substr(0, end));
    if (streamed != content) std::abort();
  } catch (const ApiError& e) {
    if (e.status != 400 && e.status != 404 && e.status != 413) std::abort();
    (void)error_body(e);
  }
  return 0;
}
