#include "rewards/score.h"

#include <sstream>
#include <unordered_map>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "metrics/coco_eval.h"
#include "metrics/summaries.h"
#include "metrics/text_distance.h"
#include "rewards/reward_util.h"

namespace refract::rewards {
namespace {

nlohmann::json parse_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    REFRACT_FAIL() << path << ": invalid JSON: " << e.what();
  }
  return {};
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<nlohmann::json> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (trim(line).empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      REFRACT_FAIL() << path << ":" << lineno << ": invalid JSON: " << e.what();
    }
    REFRACT_CHECK(out.back().is_object()) << path << ":" << lineno << ": expected an object";
    REFRACT_CHECK(out.back().contains("id")) << path << ":" << lineno << ": missing \"id\"";
  }
  return out;
}

std::string id_key(const nlohmann::json& id) {
  return id.is_string() ? id.get<std::string>() : id.dump();
}

int64_t int_or_zero(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

// The count a solution states (number, numeric string, list length).
double solution_count_value(const nlohmann::json& sol) {
  if (sol.is_number()) return sol.get<double>();
  if (sol.is_array()) return static_cast<double>(sol.size());
  if (sol.is_string()) {
    const std::string t = solution_text(sol);
    auto j = parse_json_lenient(t);
    if (j && j->is_array()) return static_cast<double>(j->size());
    if (auto n = parse_number(t)) return *n;
  }
  REFRACT_FAIL() << "count: solution " << sol.dump() << " states no count";
  return 0;
}

}  // namespace

nlohmann::json score_detection_files(const std::string& gt_path, const std::string& dt_path,
                                     int threads) {
  const auto gt = metrics::coco_gt_from_json(parse_json_file(gt_path), gt_path);
  const auto dt = metrics::coco_dets_from_json(parse_json_file(dt_path), dt_path);
  const auto res = metrics::coco_evaluate(gt, dt, metrics::CocoEvalParams(), threads);
  if (res.dropped_detections)
    LOG_WARN("{} detections name categories absent from {}; ignored (as pycocotools does)",
             res.dropped_detections, gt_path);
  if (res.dropped_gt)
    LOG_WARN("{} annotations of unlisted images or categories ignored", res.dropped_gt);
  nlohmann::json per = nlohmann::json::object();
  for (const auto& [id, ap] : res.per_category_ap) per[std::to_string(id)] = ap;
  nlohmann::json names = nlohmann::json::array();
  for (const char* n : metrics::coco_stat_names()) names.push_back(n);
  return {{"stats", res.stats},
          {"stat_names", names},
          {"per_category_ap", per},
          {"dropped_detections", res.dropped_detections},
          {"dropped_annotations", res.dropped_gt}};
}

nlohmann::json score_jsonl(const std::string& task, const std::string& predictions_path,
                           const std::string& references_path, const ScoreSettings& st) {
  REFRACT_CHECK(task == "rec" || task == "count" || task == "ocr" || task == "cls")
      << "score: task '" << task << "' is not one of: rec, count, ocr, cls (det has its own form)";
  const CoordMode coords = parse_coord_mode(st.coords);
  const auto preds = read_jsonl(predictions_path);
  const auto refs = read_jsonl(references_path);
  std::unordered_map<std::string, std::string> by_id;
  for (const auto& p : preds) {
    auto it = p.find("prediction");
    REFRACT_CHECK(it != p.end())
        << predictions_path << ": id " << id_key(p["id"]) << ": missing \"prediction\"";
    by_id[id_key(p["id"])] = it->is_string() ? it->get<std::string>() : it->dump();
  }
  int64_t missing = 0;
  nlohmann::json samples = nlohmann::json::array();
  std::vector<metrics::RecSample> rec;
  std::vector<double> count_pred, count_gt;
  std::vector<metrics::OcrSample> ocr;
  std::vector<std::string> cls_pred, cls_gt;
  for (const auto& r : refs) {
    const std::string id = id_key(r["id"]);
    REFRACT_CHECK(r.contains("solution")) << references_path << ": id " << id << ": missing \"solution\"";
    const auto& sol = r["solution"];
    auto pit = by_id.find(id);
    if (pit == by_id.end()) ++missing;  // scored as an empty prediction
    const std::string pred = pit == by_id.end() ? "" : pit->second;
    const std::string answer = answer_or_text(pred);
    nlohmann::json s = {{"id", r["id"]}};
    if (task == "rec") {
      ImageSize im;
      im.width = int_or_zero(r, "width");
      im.height = int_or_zero(r, "height");
      im.resized_width = int_or_zero(r, "resized_width");
      im.resized_height = int_or_zero(r, "resized_height");
      REFRACT_CHECK(coords != CoordMode::absolute_resized || (im.width > 0 && im.height > 0))
          << references_path << ": id " << id
          << ": coords absolute_resized needs the image's \"width\" and \"height\" (resized_width / "
             "resized_height default to what smart_resize makes of them); use --coords absolute for "
             "boxes already in original-image pixels";
      auto gt = solution_box(sol);
      REFRACT_CHECK(gt) << references_path << ": id " << id << ": solution is not a box";
      auto boxes = find_boxes(answer);
      metrics::RecSample x;
      if (!boxes.empty()) {
        const Box p = to_original(boxes[0], im, coords);
        x.iou = metrics::iou(p, *gt);
        x.center_inside = metrics::center_inside(p, *gt);
        s["box"] = {p.x1, p.y1, p.x2, p.y2};
      }
      s["iou"] = x.iou;
      rec.push_back(x);
    } else if (task == "count") {
      const double want = solution_count_value(sol);
      double got = 0;
      auto j = parse_json_lenient(answer);
      if (j && j->is_array() && !det_item_from_json(*j)) got = static_cast<double>(j->size());
      else if (auto n = parse_number(answer)) got = *n;
      s["count"] = got;
      s["correct"] = got == want;
      count_pred.push_back(got);
      count_gt.push_back(want);
    } else if (task == "ocr") {
      std::string p = answer, g = solution_text(sol);
      if (st.lowercase) p = to_lower(p), g = to_lower(g);
      s["edit_similarity"] = metrics::edit_similarity(p, g);
      ocr.push_back({p, g});
    } else {  // cls: case-insensitive, spaces and '_' ignored (Visual-RFT normalisation)
      auto norm = [](std::string_view v) {
        std::string out;
        for (char c : to_lower(trim(v)))
          if (c != ' ' && c != '_') out += c;
        return out;
      };
      const std::string p = norm(answer), g = norm(solution_text(sol));
      s["correct"] = p == g;
      cls_pred.push_back(p);
      cls_gt.push_back(g);
    }
    samples.push_back(std::move(s));
  }
  if (missing) LOG_WARN("{} references have no prediction; scored as empty", missing);
  nlohmann::json summary;
  if (task == "rec") summary = metrics::rec_summary(rec);
  else if (task == "count") summary = metrics::count_summary(count_pred, count_gt);
  else if (task == "ocr") summary = metrics::ocr_summary(ocr);
  else summary = metrics::cls_summary(cls_pred, cls_gt);
  return {{"task", task}, {"summary", summary}, {"missing_predictions", missing}, {"samples", samples}};
}

}  // namespace refract::rewards
