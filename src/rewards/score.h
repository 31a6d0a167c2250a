// `refract score`: evaluate prediction files against references (no model involved).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

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

}  // namespace refract::rewards
