#include "commands/tokenize.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "common/atomic_file.h"
#include "common/check.h"
#include "text/tokenizer.h"

namespace refract::commands {

TokenizeStats tokenize_jsonl(const std::string& tokenizer_path, const std::string& input_path,
                             const std::string& output_path, bool skip_special_tokens) {
  const text::Tokenizer tok = text::Tokenizer::from_file(tokenizer_path);
  const std::string input = read_file(input_path);
  std::istringstream in(input);
  std::string line, out;
  TokenizeStats stats;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      REFRACT_FAIL() << input_path << ":" << line_no << ": not valid JSON: " << e.what();
    }
    REFRACT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string())
        << input_path << ":" << line_no << ": expected an object with a string field \"text\"";
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(j["text"].get<std::string>());
    } catch (const Error& e) {
      REFRACT_FAIL() << input_path << ":" << line_no << ": " << e.what();
    }
    nlohmann::ordered_json o;  // "ids" first, as the golden files
    o["ids"] = ids;
    o["decoded"] = tok.decode(ids, skip_special_tokens);
    // Invalid UTF-8 cannot occur: decode() already replaced it with U+FFFD.
    out += o.dump();
    out += '\n';
    ++stats.lines;
    stats.tokens += static_cast<int64_t>(ids.size());
  }
  write_file_atomic(output_path, out);
  return stats;
}

}  // namespace refract::commands
