// Detection rewards from Visual-RFT (det_iou, det_confidence), Perception-R1 (det_pr1) and
// VLM-R1 (weighted_sum). The mAP-based ones are in rewards_map.cpp.
#include <algorithm>
#include <cmath>
#include <set>

#include "rewards/builtin.h"
#include "rewards/det_common.h"
#include "rewards/hungarian.h"
#include "rewards/predicted_boxes.h"

namespace refract::rewards {

CoordMode det_coords(const nlohmann::json& s) {
  return parse_coord_mode(setting_string(s, "coords"));
}

DetSample read_det_sample(const RewardInput& in, CoordMode coords, bool require_answer_tag) {
  DetSample d;
  d.gt = solution_items(in.solution);
  auto answer = answer_part(in, require_answer_tag);
  if (!answer) return d;
  DetList list = parse_det_items(*answer);
  d.entries = list.entries;
  d.parsed = list.parsed;
  const ImageSize im = first_image(in);
  for (auto& item : list.items) {
    item.box = to_original(item.box, im, coords);
    d.pred.push_back(std::move(item));
  }
  return d;
}

std::vector<DetItem> det_predicted_items(const RewardInput& in, const BoxReading& reading) {
  return read_det_sample(in, reading.coords, reading.require_answer_tag).pred;
}

std::vector<DetItem> solution_boxes(const nlohmann::json& solution, const std::string& task) {
  if (task == "det") return solution_items(solution);
  if (auto b = solution_box(solution)) return {DetItem{*b, "", std::nullopt}};
  return {};
}

std::vector<int> match_predictions(const std::vector<DetItem>& pred, const std::vector<DetItem>& gt,
                                   double thr) {
  std::vector<size_t> order(pred.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return pred[a].confidence.value_or(1.0) > pred[b].confidence.value_or(1.0);
  });
  std::vector<int> out(pred.size(), -1);
  std::vector<char> used(gt.size(), 0);
  for (size_t i : order) {
    double best = thr;
    for (size_t j = 0; j < gt.size(); ++j) {
      if (used[j]) continue;
      const double v = metrics::iou(pred[i].box, gt[j].box);
      if (v > best) best = v, out[i] = static_cast<int>(j);
    }
    if (out[i] >= 0) used[static_cast<size_t>(out[i])] = 1;
  }
  return out;
}

namespace {

// ref: Visual-RFT grpo.py sort_and_calculate_iou. Returns (IoU or 0, confidence) per
// prediction in descending-confidence order.
std::vector<std::pair<double, double>> visual_rft_match(std::vector<DetItem> pred,
                                                        const std::vector<DetItem>& gt,
                                                        double thr, bool match_labels) {
  // ref: remove_duplicates keeps the first prediction of each box.
  std::vector<DetItem> unique;
  for (auto& p : pred) {
    const bool dup = std::any_of(unique.begin(), unique.end(), [&](const DetItem& u) {
      return u.box.x1 == p.box.x1 && u.box.y1 == p.box.y1 && u.box.x2 == p.box.x2 &&
             u.box.y2 == p.box.y2;
    });
    if (!dup) unique.push_back(std::move(p));
  }
  // Missing confidence counts as 1 (Visual-RFT requires the key; we do not).
  std::stable_sort(unique.begin(), unique.end(), [](const DetItem& a, const DetItem& b) {
    return a.confidence.value_or(1.0) > b.confidence.value_or(1.0);
  });
  std::vector<char> used(gt.size(), 0);
  std::vector<std::pair<double, double>> out;
  for (const auto& p : unique) {
    double best = 0;
    int best_j = -1;
    for (size_t j = 0; j < gt.size(); ++j) {
      if (used[j] || (match_labels && p.label != gt[j].label)) continue;
      const double v = metrics::iou(p.box, gt[j].box);
      if (v > best) best = v, best_j = static_cast<int>(j);  // first of equal IoUs wins
    }
    const double c = p.confidence.value_or(1.0);
    if (best_j >= 0 && best > thr) {
      used[best_j] = 1;
      out.push_back({best, c});
    } else {
      out.push_back({0.0, c});
    }
  }
  return out;
}

struct VisualRftSettings {
  CoordMode coords;
  double thr;
  bool match_labels;
  bool require_answer_tag;
};

VisualRftSettings visual_rft_settings(const nlohmann::json& s) {
  return {det_coords(s), setting_double(s, "iou_threshold"),
          setting_bool(s, "match_labels"),
          setting_bool(s, "require_answer_tag")};
}

}  // namespace

// R = sum of matched IoU / max(N_gt, N_pred), capped at 1. Both empty -> 1, no prediction -> 0.
RewardFn make_det_iou(const nlohmann::json& s) {
  const auto st = visual_rft_settings(s);
  return per_sample([st](const RewardInput& in) -> std::optional<double> {
    DetSample d = read_det_sample(in, st.coords, st.require_answer_tag);
    if (d.pred.empty()) return d.gt.empty() && d.parsed ? 1.0 : 0.0;
    auto res = visual_rft_match(d.pred, d.gt, st.thr, st.match_labels);
    double sum = 0;
    for (auto& r : res) sum += r.first;
    const double denom = static_cast<double>(std::max(d.gt.size(), res.size()));
    return std::clamp(sum / denom, 0.0, 1.0);
  });
}

// Mean over predictions of c if matched else (1 - c).
RewardFn make_det_confidence(const nlohmann::json& s) {
  const auto st = visual_rft_settings(s);
  return per_sample([st](const RewardInput& in) -> std::optional<double> {
    DetSample d = read_det_sample(in, st.coords, st.require_answer_tag);
    if (d.pred.empty()) return d.gt.empty() && d.parsed ? 1.0 : 0.0;
    auto res = visual_rft_match(d.pred, d.gt, st.thr, st.match_labels);
    double sum = 0;
    for (auto& r : res) sum += r.first > 0 ? r.second : 1.0 - r.second;
    return sum / static_cast<double>(res.size());
  });
}

// Perception-R1 detection reward (docs/rewards.md "Detection"): Hungarian matching with cost
// l1_weight * L1(cx,cy,w,h normalised by the image size) - giou_weight * GIoU
// - class_weight * [labels equal]; matches kept if IoU > iou_threshold.
// reward = 0.25 valid_fraction + 0.75 F1 + 1.0 label_accuracy + 1.0 mean_IoU
//          [- 0.5 (FP/N_pred + FN/N_gt) if missing_penalty], clamped to [0, 3].
RewardFn make_det_pr1(const nlohmann::json& s) {
  struct St {
    CoordMode coords;
    bool tag;
    double thr, l1_w, giou_w, cls_w, w_format, w_f1, w_cls, w_iou;
    bool missing;
  } st{det_coords(s),
       setting_bool(s, "require_answer_tag"),
       setting_double(s, "iou_threshold"),
       setting_double(s, "cost_l1"),
       setting_double(s, "cost_giou"),
       setting_double(s, "cost_class"),
       setting_double(s, "format_weight"),
       setting_double(s, "f1_weight"),
       setting_double(s, "cls_weight"),
       setting_double(s, "iou_weight"),
       setting_bool(s, "missing_penalty")};
  return per_sample([st](const RewardInput& in) -> std::optional<double> {
    DetSample d = read_det_sample(in, st.coords, st.tag);
    const double top = st.w_format + st.w_f1 + st.w_cls + st.w_iou;
    if (d.gt.empty() && d.pred.empty()) return d.parsed ? std::clamp(top, 0.0, 3.0) : 0.0;
    const double valid =
        d.entries > 0 ? static_cast<double>(d.pred.size()) / static_cast<double>(d.entries) : 0.0;
    const ImageSize im = first_image(in);
    const double sx = im.width > 0 ? static_cast<double>(im.width) : 1000.0;
    const double sy = im.height > 0 ? static_cast<double>(im.height) : 1000.0;
    size_t tp = 0, label_ok = 0;
    double iou_sum = 0;
    if (!d.pred.empty() && !d.gt.empty()) {
      std::vector<std::vector<double>> cost(d.pred.size(), std::vector<double>(d.gt.size()));
      for (size_t i = 0; i < d.pred.size(); ++i) {
        const Box& p = d.pred[i].box;
        for (size_t j = 0; j < d.gt.size(); ++j) {
          const Box& g = d.gt[j].box;
          const double l1 = std::abs(p.center_x() - g.center_x()) / sx +
                            std::abs(p.center_y() - g.center_y()) / sy +
                            std::abs(p.width() - g.width()) / sx +
                            std::abs(p.height() - g.height()) / sy;
          const double same = d.pred[i].label == d.gt[j].label ? 1.0 : 0.0;
          cost[i][j] = st.l1_w * l1 - st.giou_w * metrics::giou(p, g) - st.cls_w * same;
        }
      }
      const auto assign = hungarian_assign(cost);
      for (size_t i = 0; i < assign.size(); ++i) {
        if (assign[i] < 0) continue;
        const double v = metrics::iou(d.pred[i].box, d.gt[assign[i]].box);
        if (v <= st.thr) continue;
        ++tp;
        iou_sum += v;
        if (d.pred[i].label == d.gt[assign[i]].label) ++label_ok;
      }
    }
    const double np = static_cast<double>(d.pred.size()), ng = static_cast<double>(d.gt.size());
    const double precision = np > 0 ? tp / np : 0.0, recall = ng > 0 ? tp / ng : 0.0;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    const double cls_acc = tp > 0 ? static_cast<double>(label_ok) / tp : 0.0;
    const double mean_iou = tp > 0 ? iou_sum / tp : 0.0;
    double r = st.w_format * valid + st.w_f1 * f1 + st.w_cls * cls_acc + st.w_iou * mean_iou;
    if (st.missing) {
      const double fp = np - tp, fn = ng - tp;
      r -= 0.5 * ((np > 0 ? fp / np : 0.0) + (ng > 0 ? fn / ng : 0.0));
    }
    return std::clamp(r, 0.0, 3.0);
  });
}

// VLM-R1 od "weighted_sum": greedy matching in prediction order, each prediction taking the
// free GT of highest IoU (IoU 0 on a label mismatch), matched if IoU >= 0.5;
// 0.7 (sum matched IoU / N_gt) + 0.3 (1 - (misses / N_gt + false_alarms / N_pred) / 2).
// Both empty -> 1; exactly one empty -> 0.
RewardFn make_weighted_sum(const nlohmann::json& s) {
  const CoordMode coords = det_coords(s);
  const bool tag = setting_bool(s, "require_answer_tag");
  const double thr = setting_double(s, "iou_threshold");
  return per_sample([=](const RewardInput& in) -> std::optional<double> {
    DetSample d = read_det_sample(in, coords, tag);
    if (d.gt.empty() && d.pred.empty()) return d.parsed ? 1.0 : 0.0;
    if (d.gt.empty() || d.pred.empty()) return 0.0;
    std::vector<char> used(d.gt.size(), 0);
    double iou_sum = 0;
    size_t matched = 0;
    for (const auto& p : d.pred) {
      double best = -1;
      int best_j = -1;
      for (size_t j = 0; j < d.gt.size(); ++j) {
        if (used[j]) continue;
        const double v = p.label == d.gt[j].label ? metrics::iou(p.box, d.gt[j].box) : 0.0;
        if (v > best) best = v, best_j = static_cast<int>(j);
      }
      if (best_j >= 0 && best >= thr) {
        used[best_j] = 1;
        iou_sum += best;
        ++matched;
      }
    }
    const double ng = static_cast<double>(d.gt.size()), np = static_cast<double>(d.pred.size());
    const double misses = ng - matched, false_alarms = np - matched;
    return 0.7 * (iou_sum / ng) + 0.3 * (1.0 - (misses / ng + false_alarms / np) / 2.0);
  });
}

}  // namespace refract::rewards
