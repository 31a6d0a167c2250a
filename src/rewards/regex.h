// Python-`re`-compatible matching for the few format patterns the references define as
// regexes (PCRE2, DOTALL + Unicode \s \d like Python 3 str patterns). Thread-safe after
// construction.
#pragma once
#include <string>
#include <string_view>

namespace refract::rewards {

class Regex {
 public:
  // Compiles with DOTALL; throws refract::Error on a bad pattern.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // re.fullmatch: the whole text matches.
  bool full_match(std::string_view text) const;
  // re.search: some substring matches. A match that exceeds PCRE2's backtracking limit on
  // hostile input counts as no match.
  bool search(std::string_view text) const;

 private:
  bool run(void* code, std::string_view text) const;
  void* code_ = nullptr;       // pattern, for search
  void* full_code_ = nullptr;  // (?:pattern)\z anchored, for full_match
};

}  // namespace refract::rewards
