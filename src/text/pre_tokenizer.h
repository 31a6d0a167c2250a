// Split pre-tokenizer (behavior "Isolated"): the regex matches and the gaps between them
// become separate pieces. The pattern comes from tokenizer.json; it is written for Oniguruma
// (what HF tokenizers uses) and run here with PCRE2 (UTF + UCP + JIT) after translating the
// classes whose meaning differs.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace refract::text {

// Rewrites an Oniguruma pattern for PCRE2: `\s` / `\S` become explicit White_Space classes.
// ref: Oniguruma \s (Unicode) = White_Space: includes U+0085; excludes U+180E, U+200B, U+FEFF.
// PCRE2's UCP \s is "Z or \t\n\v\f\r", which misses U+0085.
// `\p{L}` / `\p{N}` gain the code points Oniguruma (Unicode 16) has and PCRE2 10.42 lacks.
std::string onig_to_pcre2(std::string_view pattern);

class RegexSplitter {
 public:
  explicit RegexSplitter(const std::string& onig_pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (valid UTF-8) in order; Isolated: matches and non-empty gaps.
  // Thread-safe.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::text
