// `refract eval`: generation on held-out data (greedy, or k samples per prompt), then the
// task's metrics (the evaluation core in train/evaluate.h, scored by the `refract score`
// code): rec Acc@0.5 / Acc@tau / mean IoU / centre accuracy, count accuracy / MAE, ocr CER /
// edit similarity / exact match / token F1, cls accuracy / per class, det COCO AP (12 stats,
// per-category AP, detections.json in COCO results format).
//
// Every data file (data_file_paths) or data-config entry (dataset_name) is evaluated on its own
// and is one row of the table written to <output_dir>/eval.md and eval.json. One dataset: its
// predictions.jsonl, references.jsonl (+ det: detections.json, ground_truth.json) go to
// output_dir; several: to output_dir/<dataset>/ with that dataset's eval.json.
// No torch types (the CLI includes this).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/config.h"
#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::commands {

// The model settings (model_name_or_path, adapter, device, ...), the data and the metrics.
struct EvalConfig : model::ModelSettings {
  data::DataConfig data;                     // the training data keys (same YAML works)
  std::string task = "auto";                 // auto (from the samples) | rec | det | count | ocr | cls
  int64_t per_device_eval_batch_size = 32;   // prompts decoded together (the engine's rows / k)
  int64_t max_new_tokens = 128;
  std::string coordinate_format = "absolute_resized";  // how predicted boxes are read (rec, det)
  bool lowercase = false;                    // ocr: compare case-insensitively
  int64_t max_samples = 0;                   // > 0: only the first N samples of each dataset
  // Sampled evaluation: k completions per prompt -> mean@k of every metric, pass@j.
  int64_t num_samples_per_prompt = 1;        // 1 = greedy
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t seed = 42;
  double det_default_score = 1.0;            // det: score of a box stated without confidence
  std::string compare;                       // another run's eval.json: print the differences
  std::string output_dir = "eval_output";
};
void declare(Options& o, EvalConfig& c);

// Returns what eval.json holds: {"model", "adapter", "settings", "seconds", "datasets": [...],
// "table": {dataset: {metric: value}}}, and for a single dataset also its "task", "summary",
// "samples" at the top level; with compare, "compare".
nlohmann::json run_eval(const EvalConfig& c);

// The table (dataset x metric) as Markdown, from run_eval's result.
std::string eval_table_markdown(const nlohmann::json& result);
// Differences this - other per dataset and metric present in both: {"rows": [{"dataset",
// "metric", "this", "other", "diff"}], "only_here": [..], "only_there": [..]}, and as Markdown.
nlohmann::json compare_evals(const nlohmann::json& here, const nlohmann::json& other);
std::string compare_markdown(const nlohmann::json& comparison, const std::string& other_name);

}  // namespace refract::commands
