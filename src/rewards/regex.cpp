#define PCRE2_CODE_UNIT_WIDTH 8
#include "rewards/regex.h"

#include <pcre2.h>

#include "common/check.h"

namespace refract::rewards {
namespace {

pcre2_code* compile(const std::string& pattern, bool anchored) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  const uint32_t flags = PCRE2_DOTALL | PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                         (anchored ? PCRE2_ANCHORED : 0u);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   flags, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    REFRACT_FAIL() << "bad regex '" << pattern << "' at " << offset << ": "
                   << reinterpret_cast<const char*>(msg);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back if absent
  return code;
}

}  // namespace

Regex::Regex(const std::string& pattern) {
  code_ = compile(pattern, /*anchored=*/false);
  full_code_ = compile("(?:" + pattern + ")\\z", /*anchored=*/true);
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
  pcre2_code_free(static_cast<pcre2_code*>(full_code_));
}

bool Regex::run(void* code, std::string_view text) const {
  auto* c = static_cast<pcre2_code*>(code);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(c, nullptr);
  const int rc = pcre2_match(c, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md,
                             nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;
}

bool Regex::full_match(std::string_view text) const { return run(full_code_, text); }
bool Regex::search(std::string_view text) const { return run(code_, text); }

}  // namespace refract::rewards
