// `refract eval`: greedy generation on a dataset, then the task's metrics (the same code as
// `refract score`): rec Acc@0.5 / Acc@tau / mean IoU / centre accuracy, count accuracy / MAE,
// ocr CER / text accuracy / exact match / token F1, cls accuracy / per class.
// Writes <output_dir>/predictions.jsonl, references.jsonl and eval.json.
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
  std::string task = "auto";                 // auto (from the samples) | rec | count | ocr | cls
  int64_t per_device_eval_batch_size = 32;   // prompts per generation batch
  int64_t max_new_tokens = 128;
  std::string coordinate_format = "absolute_resized";  // how predicted boxes are read (rec)
  bool lowercase = false;                    // ocr: compare case-insensitively
  int64_t max_samples = 0;                   // > 0: only the first N samples
  std::string output_dir = "eval_output";
};
void declare(Options& o, EvalConfig& c);

// Returns the score_jsonl result ({"task", "summary", "samples", ...}) plus timing.
nlohmann::json run_eval(const EvalConfig& c);

}  // namespace refract::commands
