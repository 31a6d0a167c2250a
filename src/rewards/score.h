// `refract score`: evaluate prediction files against references (no model involved), and
// the scoring half of `refract eval` (predictions in memory, same code).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/coco_eval.h"
#include "rewards/reward.h"

namespace refract::rewards {

// COCO bbox evaluation of a detections file (COCO results list) against instances.json.
// Returns {"stats": [12], "stat_names": [..], "per_category_ap": {"<id>": ap}, "dropped_...": n}.
nlohmann::json score_detection_files(const std::string& gt_path, const std::string& dt_path,
                                     int threads = 1);

struct ScoreSettings {
  std::string coords = "absolute_resized";  // how predicted boxes are expressed (rec)
  bool lowercase = false;                   // ocr: compare case-insensitively
};

// task = rec | count | ocr | cls. predictions: JSON lines {"id", "prediction"} (raw model
// output; <answer> tags and JSON are parsed). references: JSON lines {"id", "solution",
// optional "width", "height", "resized_width", "resized_height"}.
// Returns {"task", "summary": {...}, "samples": [{"id", ...}], "missing_predictions": n}.
nlohmann::json score_jsonl(const std::string& task, const std::string& predictions_path,
                           const std::string& references_path, const ScoreSettings& settings);

// score_jsonl on lines already in memory (the `*_where` names appear in errors). Every per-sample
// entry carries "correct" (rec: IoU > 0.5, count: exact, ocr: exact match, cls: equal), the
// verdict pass@k counts.
nlohmann::json score_predictions(const std::string& task, const std::vector<nlohmann::json>& predictions,
                                 const std::vector<nlohmann::json>& references, const ScoreSettings& settings,
                                 const std::string& predictions_where = "predictions",
                                 const std::string& references_where = "references");

// ---- detection answers -> COCO detections (refract eval --task det) ----------------------

// One detection prompt's answer and what reading it needs.
struct DetAnswer {
  std::string id;                       // the sample id (for reports)
  std::string completion;               // raw model output
  int64_t image_id = 0;                 // COCO image id of the prompt's image
  ImageSize image;                      // original / resized size, to map coordinates back
  // The categories the prompt asks for (names as in the ground truth); empty = all of them.
  std::vector<std::string> categories;
};

struct DetScoreSettings {
  std::string coords = "absolute_resized";  // coordinate_format of the answers
  // Score of a detection whose answer states no confidence. Ties keep answer order (the COCO
  // evaluation sorts stably), so a list without confidences is ranked as written.
  double default_score = 1.0;
  int threads = 1;
  size_t max_examples = 20;  // examples kept per reported problem
};

struct DetScore {
  std::vector<metrics::CocoDetection> detections;  // answer order, prompt by prompt
  metrics::CocoEvalResult coco;
  // {"stats": {"AP": .., ...12}, "per_category_ap": {name: ap}, "num_prompts", "num_images",
  //  "num_detections", "unparseable_answers": {"count", "examples"}, "labels_outside_categories":
  //  {"count", "examples"}, "unlabelled_boxes", "malformed_entries", "degenerate_boxes",
  //  "confidence_given"} and per-prompt "samples".
  nlohmann::json report;
};

// Reads every answer as the detection rewards do (answer part, JSON / box tokens, coordinates
// mapped to original pixels), labels each box with a category, and scores the detections
// against `gt` with metrics::coco_evaluate. Labelling: a prompt asking for one category gives
// it to all its boxes (Visual-RFT's per-category protocol; the label, if any, is not needed);
// otherwise a box's label must name one of the prompt's categories (exact, else ignoring case,
// spaces and '_'), and boxes labelled otherwise are left out and reported.
DetScore score_det_answers(const metrics::CocoGroundTruth& gt, const std::vector<DetAnswer>& answers,
                           const DetScoreSettings& settings);

// COCO results format ([{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]), what
// pycocotools' loadRes and `refract score det` read.
nlohmann::json coco_results_json(const std::vector<metrics::CocoDetection>& detections);
// COCO instances JSON (images, annotations, categories) of a ground truth.
nlohmann::json coco_gt_json(const metrics::CocoGroundTruth& gt);

// Ground truth of det prompts read from their solutions (bbox_2d lists in original pixels):
// prompts with the same `image` share a COCO image (ids 1.. in order of first appearance),
// categories are every label seen plus the prompts' category lists, by name (ids 1.. in name
// order), area = box area, no crowd regions. A box without a label takes the prompt's one
// category, else it is an error naming `where`.
struct DetTruth {
  std::string image;                    // image identity (path)
  nlohmann::json solution;              // the sample's solution
  std::vector<std::string> categories;  // the prompt's categories (empty = all)
  std::string where;                    // "<file>:<line>" for errors
};
metrics::CocoGroundTruth det_ground_truth(const std::vector<DetTruth>& prompts, std::vector<int64_t>* image_ids);

// ---- sampled evaluation ------------------------------------------------------------------

// The unbiased pass@k estimator from n samples of which c are correct (Chen et al. 2021):
// 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k / i). Requires k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

}  // namespace refract::rewards
