// `refract eval`: generation on held-out data + the task's metrics (REC, detection, counting,
// OCR, classification), one table row per dataset; see commands/eval.h.
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
      "Evaluate a model (optionally with a LoRA --adapter) on held-out data: greedy generation (or "
      "--num_samples_per_prompt k sampled: mean@k, pass@j), then rec Acc@0.5 (IoU > 0.5) / Acc@tau / "
      "mean IoU, det COCO AP (12 stats, per-category AP, detections.json for pycocotools), count "
      "accuracy / MAE, ocr CER / text accuracy, cls accuracy. Each data file or data-config entry is "
      "one row of the table in eval.md / eval.json (--output_dir); --compare other/eval.json prints "
      "the differences.");
  commands::declare(st->options, st->config);
  st->options.add_to(*cmd);
  cmd->callback([st] {
    st->options.parse();
    const nlohmann::json r = commands::run_eval(st->config);
    if (r["datasets"].size() == 1)
      std::printf("%s\n", nlohmann::json{{"task", r["task"]}, {"summary", r["summary"]}}.dump(2).c_str());
    else
      std::printf("%s", commands::eval_table_markdown(r).c_str());
    if (r.contains("compare"))
      std::printf("\n%s", commands::compare_markdown(r["compare"], st->config.compare).c_str());
  });
}

}  // namespace refract::cli
