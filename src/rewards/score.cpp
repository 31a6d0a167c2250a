#include "rewards/score.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
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
  return score_predictions(task, read_jsonl(predictions_path), read_jsonl(references_path), st, predictions_path,
                           references_path);
}

nlohmann::json score_predictions(const std::string& task, const std::vector<nlohmann::json>& preds,
                                 const std::vector<nlohmann::json>& refs, const ScoreSettings& st,
                                 const std::string& predictions_path, const std::string& references_path) {
  REFRACT_CHECK(task == "rec" || task == "count" || task == "ocr" || task == "cls")
      << "score: task '" << task << "' is not one of: rec, count, ocr, cls (det has its own form)";
  const CoordMode coords = parse_coord_mode(st.coords);
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
      s["correct"] = x.iou > 0.5;  // VLM-R1's Acc@0.5 verdict (strict)
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
      s["correct"] = p == g;
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

// ---- detection answers ---------------------------------------------------------------------

namespace {

// Category names compared the way people write them: case, spaces and '_' do not matter.
std::string label_key(std::string_view v) {
  std::string out;
  for (char c : to_lower(trim(v)))
    if (c != ' ' && c != '_') out += c;
  return out;
}

}  // namespace

DetScore score_det_answers(const metrics::CocoGroundTruth& gt, const std::vector<DetAnswer>& answers,
                           const DetScoreSettings& st) {
  const CoordMode coords = parse_coord_mode(st.coords);
  std::map<std::string, int64_t> exact_id, loose_id;  // category name -> id
  std::map<int64_t, std::string> name_of;
  for (const auto& [id, name] : gt.categories) {
    exact_id.emplace(name, id);
    loose_id.emplace(label_key(name), id);
    name_of[id] = name;
  }
  DetScore out;
  nlohmann::json samples = nlohmann::json::array();
  nlohmann::json unparseable_examples = nlohmann::json::array(), outside_examples = nlohmann::json::array();
  int64_t unparseable = 0, outside = 0, unlabelled = 0, malformed = 0, degenerate = 0, with_confidence = 0,
          relabelled = 0;
  std::set<int64_t> images;
  for (const DetAnswer& a : answers) {
    images.insert(a.image_id);
    // The categories this prompt may be answered with.
    std::vector<int64_t> allowed;
    if (a.categories.empty()) {
      for (const auto& c : gt.categories) allowed.push_back(c.first);
    } else {
      for (const auto& name : a.categories) {
        auto it = exact_id.find(name);
        REFRACT_CHECK(it != exact_id.end())
            << "det: sample " << a.id << " asks for category '" << name << "', which the ground truth does not list";
        allowed.push_back(it->second);
      }
    }
    nlohmann::json s = {{"id", a.id}, {"image_id", a.image_id}};
    // Parse tolerantly: the answer part, as the detection rewards read it.
    const std::string answer = trim(extract_answer(a.completion).value_or(a.completion));
    const DetList list = parse_det_items(answer);
    if (!list.parsed) {
      ++unparseable;
      if (unparseable_examples.size() < st.max_examples)
        unparseable_examples.push_back({{"id", a.id}, {"completion", a.completion.substr(0, 200)}});
    }
    malformed += static_cast<int64_t>(list.entries) - static_cast<int64_t>(list.items.size());
    int64_t kept = 0;
    nlohmann::json outside_labels = nlohmann::json::array();
    for (const DetItem& item : list.items) {
      int64_t cat = -1;
      if (allowed.size() == 1) {
        cat = allowed[0];
        if (!item.label.empty() && label_key(item.label) != label_key(name_of[cat])) ++relabelled;
      } else if (item.label.empty()) {
        ++unlabelled;
        continue;
      } else {
        auto it = exact_id.find(item.label);
        if (it != exact_id.end()) cat = it->second;
        else if (auto lt = loose_id.find(label_key(item.label)); lt != loose_id.end()) cat = lt->second;
        if (cat < 0 || std::find(allowed.begin(), allowed.end(), cat) == allowed.end()) {
          ++outside;
          outside_labels.push_back(item.label);
          if (outside_examples.size() < st.max_examples)
            outside_examples.push_back({{"id", a.id}, {"label", item.label}});
          continue;
        }
      }
      const Box b = to_original(item.box, a.image, coords);
      metrics::CocoDetection d;
      d.image_id = a.image_id;
      d.category_id = cat;
      d.x = b.x1, d.y = b.y1;
      // A box with x2 < x1 stays a (zero-area) detection: it is a false positive, not a
      // reason to forgive the answer.
      d.w = std::max(0.0, b.x2 - b.x1), d.h = std::max(0.0, b.y2 - b.y1);
      if (d.w <= 0 || d.h <= 0) ++degenerate;
      if (item.confidence) ++with_confidence;
      d.score = item.confidence.value_or(st.default_score);
      out.detections.push_back(d);
      ++kept;
    }
    s["parsed"] = list.parsed;
    s["num_boxes"] = list.items.size();
    s["num_detections"] = kept;
    if (!outside_labels.empty()) s["labels_outside_categories"] = outside_labels;
    samples.push_back(std::move(s));
  }
  out.coco = metrics::coco_evaluate(gt, out.detections, metrics::CocoEvalParams(), st.threads);
  nlohmann::json stats = nlohmann::json::object();
  for (size_t i = 0; i < out.coco.stats.size(); ++i) stats[metrics::coco_stat_names()[i]] = out.coco.stats[i];
  nlohmann::json per = nlohmann::json::object();
  for (const auto& [id, ap] : out.coco.per_category_ap) per[name_of.count(id) && !name_of[id].empty() ? name_of[id] : std::to_string(id)] = ap;
  out.report = {{"stats", stats},
                {"per_category_ap", per},
                {"num_prompts", answers.size()},
                {"num_images", images.size()},
                {"num_gt_boxes", gt.annotations.size()},
                {"num_detections", out.detections.size()},
                {"detections_with_confidence", with_confidence},
                {"default_score", st.default_score},
                {"unparseable_answers", {{"count", unparseable}, {"examples", unparseable_examples}}},
                {"labels_outside_categories", {{"count", outside}, {"examples", outside_examples}}},
                {"unlabelled_boxes", unlabelled},
                {"relabelled_boxes", relabelled},
                {"malformed_entries", malformed},
                {"degenerate_boxes", degenerate},
                {"samples", samples}};
  return out;
}

nlohmann::json coco_results_json(const std::vector<metrics::CocoDetection>& dets) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : dets)
    out.push_back({{"image_id", d.image_id}, {"category_id", d.category_id}, {"bbox", {d.x, d.y, d.w, d.h}},
                   {"score", d.score}});
  return out;
}

nlohmann::json coco_gt_json(const metrics::CocoGroundTruth& gt) {
  nlohmann::json images = nlohmann::json::array(), anns = nlohmann::json::array(), cats = nlohmann::json::array();
  for (int64_t id : gt.image_ids) images.push_back({{"id", id}});
  for (const auto& [id, name] : gt.categories) cats.push_back({{"id", id}, {"name", name}});
  for (const auto& a : gt.annotations)
    anns.push_back({{"id", a.id}, {"image_id", a.image_id}, {"category_id", a.category_id},
                    {"bbox", {a.x, a.y, a.w, a.h}}, {"area", a.area}, {"iscrowd", a.iscrowd ? 1 : 0}});
  return {{"images", images}, {"annotations", anns}, {"categories", cats}};
}

metrics::CocoGroundTruth det_ground_truth(const std::vector<DetTruth>& prompts, std::vector<int64_t>* image_ids) {
  // Categories first: every label and every asked-for name, ids in name order.
  std::set<std::string> names;
  std::vector<std::vector<DetItem>> items(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    items[i] = solution_items(prompts[i].solution);
    for (const auto& c : prompts[i].categories) names.insert(c);
    for (auto& it : items[i]) {
      if (it.label.empty()) {
        REFRACT_CHECK(prompts[i].categories.size() == 1)
            << prompts[i].where << ": a ground-truth box has no label and the prompt does not name exactly one "
            << "category to give it";
        it.label = prompts[i].categories[0];
      }
      names.insert(it.label);
    }
  }
  metrics::CocoGroundTruth gt;
  std::map<std::string, int64_t> cat_id;
  for (const auto& n : names) {
    cat_id[n] = static_cast<int64_t>(cat_id.size()) + 1;
    gt.categories.emplace_back(cat_id[n], n);
  }
  std::map<std::string, int64_t> image_id;
  // (image, category) pairs already annotated: prompts that ask about the same image (one per
  // category, Visual-RFT style) carry the same boxes again.
  std::set<std::pair<int64_t, int64_t>> done;
  image_ids->clear();
  int64_t ann_id = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto [it, fresh] = image_id.emplace(prompts[i].image, static_cast<int64_t>(image_id.size()) + 1);
    if (fresh) gt.image_ids.push_back(it->second);
    image_ids->push_back(it->second);
    std::set<int64_t> cats_here;
    for (const auto& item : items[i]) cats_here.insert(cat_id[item.label]);
    for (int64_t c : cats_here) {
      if (!done.insert({it->second, c}).second) continue;
      for (const auto& item : items[i]) {
        if (cat_id[item.label] != c) continue;
        metrics::CocoAnnotation a;
        a.id = ++ann_id;
        a.image_id = it->second;
        a.category_id = c;
        a.x = item.box.x1, a.y = item.box.y1, a.w = item.box.x2 - item.box.x1, a.h = item.box.y2 - item.box.y1;
        a.area = a.w * a.h;
        gt.annotations.push_back(a);
      }
    }
  }
  return gt;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  REFRACT_CHECK(n >= 1 && k >= 1 && k <= n && c >= 0 && c <= n)
      << "pass@k needs 1 <= k <= n and 0 <= c <= n (n=" << n << ", c=" << c << ", k=" << k << ")";
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  // ref: Chen et al. 2021 (Codex), numerically stable form of 1 - C(n-c,k)/C(n,k).
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - prod;
}

}  // namespace refract::rewards
