// OpenAI-style API errors: every rejected request becomes
//   HTTP <status> {"error": {"message": ..., "type": ..., "param": ..., "code": null}}
// with `param` naming the offending field (e.g. "messages[0].content[1].image_url.url").
// ref: https://platform.openai.com/docs/guides/error-codes (invalid_request_error)
#pragma once
#include <stdexcept>
#include <string>

namespace refract::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "",
           std::string type = "invalid_request_error", std::string code = "")
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        type(std::move(type)),
        code(std::move(code)) {}

  // 400 client mistake, 401 missing / wrong API key, 404 unknown route or model, 413 body
  // too large, 503 queue full / deadline passed, 500 our fault (a short message only).
  int status;
  std::string param;  // "" -> null
  std::string type;   // invalid_request_error | authentication_error | not_found_error | server_error
  std::string code;   // "" -> null; e.g. model_not_found, invalid_api_key
};

// A 400 invalid_request_error naming `param`.
inline ApiError bad_request(std::string message, std::string param = "") {
  return ApiError(400, std::move(message), std::move(param));
}

// An internal error message made fit for a client: REFRACT_CHECK's "[/abs/path/file.cpp:12] "
// prefixes are removed (no source paths in responses).
inline std::string client_text(std::string m) {
  for (size_t at = m.find('['); at != std::string::npos; at = m.find('[', at)) {
    const size_t end = m.find("] ", at);
    const size_t colon = m.rfind(':', end);
    if (end == std::string::npos || colon == std::string::npos || colon < at ||
        m.find_first_not_of("0123456789", colon + 1) != end || m.find('/', at) > end) {
      ++at;
      continue;
    }
    m.erase(at, end + 2 - at);
  }
  return m;
}

// The JSON body of an error response.
std::string error_body(const ApiError& e);

}  // namespace refract::serve
