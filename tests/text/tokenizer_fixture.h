// The Qwen tokenizer of tests/fixtures/tokenizer, loaded once per test binary (~0.5 s).
#pragma once
#include <string>

#include "text/tokenizer.h"

namespace refract::text {
inline const Tokenizer& qwen_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_file(std::string(REFRACT_FIXTURES_DIR) + "/tokenizer");
  return tok;
}
}  // namespace refract::text
