// Task summaries for evaluation: referring expressions (REC), counting, OCR, classification.
// Inputs are per-sample scores already computed; outputs are JSON objects with fractions in
// [0, 1] (not percentages).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/box.h"

namespace refract::metrics {

struct RecSample {
  double iou = 0;              // 0 when the prediction had no box
  bool center_inside = false;  // the predicted box's centre lies inside the GT box
};

// Is the centre of `pred` inside `gt` (borders included)? (PR1 centre accuracy)
bool center_inside(const Box& pred, const Box& gt);

// {"n", "accuracy": IoU > 0.5 strict (VLM-R1 headline), "acc@0.1", "acc@0.3", "acc@0.5",
//  "acc@0.75", "acc@0.95": IoU >= tau (PR1), "mean_iou", "center_accuracy"}
nlohmann::json rec_summary(const std::vector<RecSample>& samples);

// {"n", "accuracy": exact count, "mae": mean |pred - gt|}
nlohmann::json count_summary(const std::vector<double>& pred, const std::vector<double>& gt);

struct OcrSample {
  std::string prediction, reference;
};
// {"n", "cer": total edits / total reference characters, "edit_similarity": mean of
//  1 - edits / max(len), "exact_match", "token_f1": mean token-set F1}
nlohmann::json ocr_summary(const std::vector<OcrSample>& samples);

// {"n", "accuracy", "per_class": {label: {"n", "accuracy"}}}; labels compared as given.
nlohmann::json cls_summary(const std::vector<std::string>& pred, const std::vector<std::string>& gt);

}  // namespace refract::metrics
