// `refract tokenize` entry point: a JSONL file of {"text": ...} through the tokenizer.
#pragma once
#include <cstdint>
#include <string>

namespace refract::commands {

struct TokenizeStats {
  int64_t lines = 0;
  int64_t tokens = 0;
};

// Each non-empty input line {"text": ...} becomes {"ids": [...], "decoded": "..."} in
// `output_path` (written atomically). `decoded` is decode(ids, skip_special_tokens).
// Errors name the input file and line.
TokenizeStats tokenize_jsonl(const std::string& tokenizer_path, const std::string& input_path,
                             const std::string& output_path, bool skip_special_tokens = false);

}  // namespace refract::commands
