// `refract eval`: greedy generation on a dataset + the task's metrics (REC, counting, OCR,
// classification); see train/eval_run.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/eval.h"

namespace refract::cli {

void add_eval_command(CLI::App& app) {
  struct State {
    commands::EvalConfig config;
    Options options;
  };
  auto st = std::make_shared<State>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate a model (optionally with a LoRA --adapter) on a dataset: greedy generation, then "
      "rec Acc@0.5 (IoU > 0.5) / Acc@tau / mean IoU, count accuracy / MAE, ocr CER / text "
      "accuracy, cls accuracy. Prints the summary; writes predictions.jsonl, references.jsonl and "
      "eval.json in --output_dir.");
  commands::declare(st->options, st->config);
  st->options.add_to(*cmd);
  cmd->callback([st] {
    st->options.parse();
    const nlohmann::json r = commands::run_eval(st->config);
    std::printf("%s\n", nlohmann::json{{"task", r["task"]}, {"summary", r["summary"]}}.dump(2).c_str());
  });
}

}  // namespace refract::cli
