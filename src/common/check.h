// Errors with context. Library code throws refract::Error; only the CLI main and the
// HTTP handlers catch. REFRACT_CHECK(cond) << "what was wrong" records file:line.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace refract {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// Collects a message with operator<< and throws when it goes out of scope.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond) {
    stream_ << "[" << file << ":" << line << "] ";
    (void)cond;
  }
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }
  [[noreturn]] ~CheckFailure() noexcept(false) { throw Error(stream_.str()); }

 private:
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace refract

#define REFRACT_CHECK(cond) \
  if (cond) {               \
  } else                    \
    ::refract::detail::CheckFailure(__FILE__, __LINE__, #cond)

#define REFRACT_FAIL() ::refract::detail::CheckFailure(__FILE__, __LINE__, "")
