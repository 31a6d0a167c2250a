// `refract tokenize`: encode {"text": ...} lines with a HF tokenizer.json and write
// {"ids": [...], "decoded": "..."} lines, for parity checks against HF tokenizers.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "commands/tokenize.h"

namespace refract::cli {
namespace {

struct TokenizeSettings {
  std::string tokenizer;
  std::string input;
  std::string output;
  bool skip_special_tokens = false;
};

struct TokenizeCommand {
  TokenizeSettings settings;
  Options options;
};

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto state = std::make_shared<TokenizeCommand>();
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Encode a JSONL file of {\"text\": ...} lines with a Hugging Face tokenizer.json and write "
      "{\"ids\": [...], \"decoded\": ...} lines (add_special_tokens=false)");
  Options& o = state->options;
  TokenizeSettings& s = state->settings;
  o.add("tokenizer", &s.tokenizer, "tokenizer.json, or a directory holding it (and tokenizer_config.json)");
  o.add("input", &s.input, "input JSONL, one {\"text\": ...} object a line");
  o.add("output", &s.output, "output JSONL (written atomically)");
  o.add("skip_special_tokens", &s.skip_special_tokens, "drop special tokens from \"decoded\"");
  o.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    const TokenizeSettings& s = state->settings;
    REFRACT_CHECK(!s.tokenizer.empty()) << "--tokenizer is required";
    REFRACT_CHECK(!s.input.empty()) << "--input is required";
    REFRACT_CHECK(!s.output.empty()) << "--output is required";
    const auto stats = commands::tokenize_jsonl(s.tokenizer, s.input, s.output, s.skip_special_tokens);
    LOG_INFO("tokenized {} lines, {} tokens -> {}", stats.lines, stats.tokens, s.output);
  });
}

}  // namespace refract::cli
