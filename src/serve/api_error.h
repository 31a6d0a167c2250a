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
           std::string type = "invalid_request_error")
      : std::runtime_error(message), status(status), param(std::move(param)), type(std::move(type)) {}

  int status;         // 400 for every client mistake, 404 unknown route, 500 our fault
  std::string param;  // "" -> null
  std::string type;   // invalid_request_error | not_found_error | server_error
};

// A 400 invalid_request_error naming `param`.
inline ApiError bad_request(std::string message, std::string param = "") {
  return ApiError(400, std::move(message), std::move(param));
}

// The JSON body of an error response.
std::string error_body(const ApiError& e);

}  // namespace refract::serve
