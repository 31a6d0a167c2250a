// COCO bbox evaluation, identical to pycocotools COCOeval(iouType="bbox") evaluate() +
// accumulate() + summarize(): 12 stats and per-category AP.
// ref: cocodataset/cocoapi PythonAPI/pycocotools/cocoeval.py @8c9bcc3
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace refract::metrics {

struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // bbox [x, y, w, h]
  double area = 0;                    // the GT `area` field (segment area), not w*h
  bool iscrowd = false;               // also the ignore flag (a GT's own `ignore` is overwritten)
};

struct CocoDetection {
  int64_t image_id = 0;
  int64_t category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;
  double score = 0;
};

struct CocoGroundTruth {
  std::vector<int64_t> image_ids;
  std::vector<std::pair<int64_t, std::string>> categories;  // (id, name)
  std::vector<CocoAnnotation> annotations;
};

struct CocoEvalParams {
  std::vector<double> iou_thrs;                     // np.linspace(.5, .95, 10)
  std::vector<double> rec_thrs;                     // np.linspace(0, 1, 101)
  std::vector<int64_t> max_dets = {1, 10, 100};
  std::vector<std::pair<double, double>> area_rngs;  // all, small, medium, large
  CocoEvalParams();
};

struct CocoEvalResult {
  // AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl; -1 where undefined.
  std::array<double, 12> stats{};
  std::vector<std::pair<int64_t, double>> per_category_ap;  // sorted by category id
  int64_t dropped_gt = 0;          // GT of categories not listed (pycocotools drops silently)
  int64_t dropped_detections = 0;  // detections of categories not in the GT
};

// Names of the 12 stats in order.
const std::array<const char*, 12>& coco_stat_names();

// Runs the evaluation. Throws refract::Error if a detection names an image absent from the
// ground truth (pycocotools asserts). `threads` > 1 evaluates categories in parallel (the
// result is identical).
CocoEvalResult coco_evaluate(const CocoGroundTruth& gt, const std::vector<CocoDetection>& dt,
                             const CocoEvalParams& params = CocoEvalParams(), int threads = 1);

// From COCO `instances_*.json` / a detections list. `where` names the source in errors.
CocoGroundTruth coco_gt_from_json(const nlohmann::json& j, const std::string& where = "gt");
std::vector<CocoDetection> coco_dets_from_json(const nlohmann::json& j,
                                               const std::string& where = "detections");

// numpy's pairwise summation (np.add.reduce on a contiguous float64 array), so means match
// np.mean to the last bit.
double numpy_pairwise_sum(const double* a, size_t n);

}  // namespace refract::metrics
