// `refract score`: evaluate saved predictions against references, without a model.
//   refract score det --gt instances.json --predictions detections.json
//   refract score rec|count|ocr|cls --predictions preds.jsonl --references refs.jsonl
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "rewards/score.h"

namespace refract::cli {
namespace {

struct ScoreSettings {
  std::string gt;
  std::string predictions;
  std::string references;
  std::string output;
  std::string coords = "absolute_resized";
  bool lowercase = false;
  int64_t threads = 1;
  std::string log_level = "info";
};

struct ScoreCommand {
  std::string task;
  ScoreSettings settings;
  Options options;
};

constexpr const char* kFooter = R"(
Tasks and files:
  det    --gt: COCO instances.json (images, annotations, categories).
         --predictions: COCO results list [{"image_id", "category_id", "bbox": [x,y,w,h], "score"}].
         Prints {"stats": [AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl],
         "per_category_ap": {"<id>": AP}}, identical to pycocotools COCOeval (bbox).
  rec|count|ocr|cls
         --predictions: JSON lines {"id": .., "prediction": "<raw model output>"}
           (<answer> tags, JSON and boxes are parsed from it).
         --references: JSON lines {"id": .., "solution": ..} where solution is
           rec: [x1,y1,x2,y2] in original-image pixels (plus "width", "height" and, for
                absolute_resized, optionally "resized_width", "resized_height": by default
                what smart_resize makes of width x height);
           count: a number (or a list whose length is the count);
           ocr: the text; cls: the label.
         Prints the summary: rec {accuracy (IoU > 0.5), acc@0.1..0.95 (IoU >= t), mean_iou,
         center_accuracy}; count {accuracy, mae}; ocr {cer, edit_similarity, exact_match,
         token_f1}; cls {accuracy, per_class}. Fractions in [0, 1].
  --output writes the full result (summary and per-sample scores) as JSON, atomically.)";

}  // namespace

void add_score_command(CLI::App& app) {
  auto state = std::make_shared<ScoreCommand>();
  auto* cmd = app.add_subcommand("score",
                                 "Score saved predictions against references: COCO detection "
                                 "(pycocotools-identical), REC, counting, OCR, classification");
  cmd->footer(kFooter);
  cmd->add_option("task", state->task, "det | rec | count | ocr | cls")
      ->required()
      ->check(CLI::IsMember({"det", "rec", "count", "ocr", "cls"}));
  Options& o = state->options;
  ScoreSettings& s = state->settings;
  o.add("gt", &s.gt, "det: COCO ground truth (instances.json)");
  o.add("predictions", &s.predictions, "det: COCO results JSON; others: predictions JSONL");
  o.add("references", &s.references, "rec/count/ocr/cls: references JSONL");
  o.add("output", &s.output, "write the full result (summary + per-sample scores) here");
  o.add("coords", &s.coords, "rec: how predicted boxes are expressed")
      .choices({"absolute_resized", "normalized_1000", "absolute"});
  o.add("lowercase", &s.lowercase, "ocr: compare case-insensitively");
  o.add("threads", &s.threads, "det: evaluation threads (results are identical)");
  o.add("log_level", &s.log_level, "messages on stderr: trace, debug, info, warn, error");
  o.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    const ScoreSettings& s = state->settings;
    set_log_level(s.log_level);  // logs to stderr: stdout carries only the JSON result
    REFRACT_CHECK(!s.predictions.empty()) << "--predictions is required";
    nlohmann::json result, printed;
    if (state->task == "det") {
      REFRACT_CHECK(!s.gt.empty()) << "refract score det: --gt is required";
      result = rewards::score_detection_files(s.gt, s.predictions, static_cast<int>(s.threads));
      printed = {{"stats", result["stats"]}, {"per_category_ap", result["per_category_ap"]}};
    } else {
      REFRACT_CHECK(!s.references.empty())
          << "refract score " << state->task << ": --references is required";
      rewards::ScoreSettings st;
      st.coords = s.coords;
      st.lowercase = s.lowercase;
      result = rewards::score_jsonl(state->task, s.predictions, s.references, st);
      printed = result["summary"];
    }
    if (!s.output.empty()) {
      write_file_atomic(s.output, result.dump(2) + "\n");
      LOG_INFO("wrote {}", s.output);
    }
    std::printf("%s\n", printed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  });
}

}  // namespace refract::cli
