// Evaluating a model on held-out samples: the core that `refract eval` and the trainers'
// periodic evaluation (eval_strategy: steps) both run. Generation (greedy, or k samples per
// prompt), then the task's metrics from the same scoring code as `refract score`: rec Acc@0.5
// (IoU strictly > 0.5, the VLM-R1 / RefCOCO convention) / Acc@tau / mean IoU, count accuracy /
// MAE, ocr CER / edit similarity, cls accuracy, det COCO AP (pycocotools-exact) from the boxes
// the answers list.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/config.h"
#include "data/sample.h"
#include "metrics/coco_eval.h"
#include "model/open_model.h"
#include "rewards/reward.h"

namespace refract::train {

// One generated completion with what scoring needs (decoded with special tokens skipped, as
// VLM-R1 decodes).
struct GreedyCompletion {
  std::vector<int32_t> ids;
  std::string completion;
  std::string prompt;                         // rendered prompt text
  std::vector<rewards::ImageSize> images;     // original and resized sizes
};
// Greedy generation for every sample, in sample order (batches of batch_size prompts). Stops
// at the model's stop ids; images go through the model's processor.
std::vector<GreedyCompletion> generate_greedy(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                                              int64_t batch_size, int64_t max_new_tokens);

struct EvalGeneration {
  int64_t batch_size = 8;              // prompts per generation call (per_device_eval_batch_size)
  int64_t max_new_tokens = 128;
  int64_t num_samples_per_prompt = 1;  // k; 1 = greedy, > 1 = sampled with the settings below
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t seed = 0;                    // sampled draws are a function of (seed, sample position)
};
// k completions per sample: out[i][j]. Sampling draws from the generation engine's own
// generators, never torch's global one, and the module's train/eval mode is restored: an
// evaluation between training steps leaves the training trajectory unchanged.
std::vector<std::vector<GreedyCompletion>> generate_for_eval(const model::OpenedModel& m,
                                                             const std::vector<data::Sample>& samples,
                                                             const EvalGeneration& g);

// One held-out dataset, validated as training validates its data.
struct EvalDataset {
  std::string name;                 // a table row: the data file's stem, or "eval"
  std::vector<std::string> files;
  std::vector<data::Sample> samples;
  std::string task;                 // rec | det | count | ocr | cls
  // det read from one COCO instances file: its own ground truth (segment areas, crowd
  // regions), so the AP equals pycocotools on that file. Otherwise built from the solutions.
  std::optional<metrics::CocoGroundTruth> coco_gt;
  int64_t rejected = 0;             // samples validation left out (on_bad_sample: skip)
};

// The datasets a DataConfig names (data_file_paths and/or dataset_name entries, with their
// sampling strategies). separate: one dataset per file / entry; else all in one named "eval".
// task: auto = the samples' one task (an error when they mix tasks). max_samples > 0 keeps the
// first N samples of each dataset.
std::vector<EvalDataset> load_eval_datasets(const data::DataConfig& dc, const model::OpenedModel& m,
                                            const std::string& task, int64_t max_samples, bool separate);

struct EvalSettings : EvalGeneration {
  std::string coordinate_format = "absolute_resized";  // how answers express boxes (rec, det)
  bool lowercase = false;                              // ocr: compare case-insensitively
  double det_default_score = 1.0;                      // det: score of a box without confidence
  int threads = 1;                                     // det: COCO evaluation threads
};

struct EvalResult {
  // {"task", "num_samples", "num_samples_per_prompt", "summary": {metric: value}, "samples":
  //  [...], "seconds"; det: "detection": {counts, per_category_ap, ...}}
  nlohmann::json report;
  std::map<std::string, double> metrics;  // the summary's numbers (what eval/<metric> logs)
  std::string predictions_jsonl;          // {"id", "prediction"[, "predictions": k]}
  std::string references_jsonl;           // {"id", "solution", image sizes}
  nlohmann::json detections;              // det: COCO results of the (first) draw
  nlohmann::json ground_truth;            // det: the COCO instances they are scored against
};

// Generates and scores. With k > 1 every summary metric is its mean over the k draws
// (mean@k), plus "mean@k" (mean correctness) and "pass@j" (unbiased estimator) for j = 1, 2,
// 4, ... and k (rec, count, ocr, cls).
EvalResult evaluate(const model::OpenedModel& m, const EvalDataset& d, const EvalSettings& s);

// Scoring alone, from completions already made (completions[i][j] for sample i, draw j).
EvalResult score_completions(const EvalDataset& d, const std::vector<std::vector<GreedyCompletion>>& completions,
                             const EvalSettings& s);

// predictions.jsonl, references.jsonl, eval.json (+ det: detections.json, ground_truth.json),
// each written atomically into dir (created).
void write_eval_files(const std::string& dir, const EvalResult& r);

// The metric names evaluate() reports for a task with k samples per prompt (to check
// metric_for_best_model before training starts).
std::vector<std::string> eval_metric_names(const std::string& task, int64_t num_samples_per_prompt = 1);
// Lower is better for error rates (cer, mae) and losses; higher for everything else.
bool metric_greater_is_better(const std::string& metric);

// ---- the demo's REC evaluator (scores through the `iou` reward) ---------------------------

struct RecEvalResult {
  int64_t num_samples = 0;
  double acc50 = 0;
  double miou = 0;
  double seconds = 0;
};

struct RecEvalOptions {
  int64_t batch_size = 32;
  int64_t max_new_tokens = 64;
  std::string coordinate_format = "absolute_resized";
  std::string predictions_path;  // optional JSONL of {id, completion, iou}
};

RecEvalResult evaluate_rec(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                           const RecEvalOptions& opt);

}  // namespace refract::train
