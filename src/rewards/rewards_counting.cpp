// Counting rewards: exact count, and Perception-R1's point-matching reward.
#include <algorithm>
#include <cmath>

#include "rewards/builtin.h"
#include "rewards/det_common.h"
#include "rewards/hungarian.h"

namespace refract::rewards {
namespace {

struct Point {
  double x, y;
};

// The count a solution states: a number, a numeric string, or the length of a list.
std::optional<double> solution_count(const nlohmann::json& sol) {
  if (sol.is_number()) return sol.get<double>();
  if (sol.is_array()) return static_cast<double>(sol.size());
  if (sol.is_string()) {
    const std::string t = solution_text(sol);
    auto j = parse_json_lenient(t);
    if (j && j->is_array()) return static_cast<double>(j->size());
    return parse_number(t);
  }
  return std::nullopt;
}

// Points from a JSON list: [x, y] pairs, {"point_2d": [x, y]}, or boxes (reduced to centres).
std::vector<Point> points_from_json(const nlohmann::json& j) {
  std::vector<Point> out;
  if (!j.is_array()) return out;
  for (const auto& el : j) {
    const nlohmann::json* p = &el;
    if (el.is_object()) {
      auto it = el.find("point_2d");
      if (it == el.end()) it = el.find("point");
      if (it != el.end()) p = &*it;
    }
    if (p->is_array() && p->size() == 2 && (*p)[0].is_number() && (*p)[1].is_number()) {
      out.push_back({(*p)[0].get<double>(), (*p)[1].get<double>()});
    } else if (auto item = det_item_from_json(el)) {
      out.push_back({item->box.center_x(), item->box.center_y()});
    }
  }
  return out;
}

}  // namespace

// 1 if the predicted count equals the solution's. The prediction is the number of objects
// when the answer is a list of boxes / points, else the first number in the answer.
RewardFn make_count(const nlohmann::json& s) {
  const bool tag = setting_bool(s, "require_answer_tag");
  return per_sample([tag](const RewardInput& in) -> std::optional<double> {
    auto answer = answer_part(in, tag);
    auto want = solution_count(in.solution);
    if (!answer || !want) return 0.0;
    std::optional<double> got;
    auto j = parse_json_lenient(*answer);
    if (j && j->is_array() && !det_item_from_json(*j)) got = static_cast<double>(j->size());
    else got = parse_number(*answer);
    return got && *got == *want ? 1.0 : 0.0;
  });
}

// Perception-R1 counting: boxes reduced to centres, Hungarian matching on L2 distance to the
// GT points (both in 0..1000 units of the image), reward = min(Np, Ng) / max(Np, Ng) *
// (1 - mean matched distance / (1000 sqrt 2)). Both empty -> 1, one empty -> 0.
RewardFn make_count_pr1(const nlohmann::json& s) {
  const CoordMode coords = det_coords(s);
  const bool tag = setting_bool(s, "require_answer_tag");
  return per_sample([=](const RewardInput& in) -> std::optional<double> {
    const ImageSize im = first_image(in);
    std::vector<Point> gt;
    if (in.solution.is_string()) {
      if (auto j = parse_json_lenient(solution_text(in.solution))) gt = points_from_json(*j);
    } else {
      gt = points_from_json(in.solution);
    }
    std::vector<Point> pred;
    if (auto answer = answer_part(in, tag)) {
      std::vector<Point> raw;
      if (auto j = parse_json_lenient(*answer)) raw = points_from_json(*j);
      // ref: Perception-R1 answers with Qwen2-VL boxes, "(x1,y1),(x2,y2)" (with or without
      // <|box_start|>..<|box_end|>), reduced to their centres.
      if (raw.empty())
        for (const auto& item : parse_det_items(*answer).items) raw.push_back({item.box.center_x(), item.box.center_y()});
      for (const auto& p : raw) {
        // Map a point as a degenerate box so it follows the same coordinate convention.
        const Box b = to_original({p.x, p.y, p.x, p.y}, im, coords);
        pred.push_back({b.x1, b.y1});
      }
    }
    if (pred.empty() && gt.empty()) return 1.0;
    if (pred.empty() || gt.empty()) return 0.0;
    // Express both in 0..1000 units so the normaliser 1000 sqrt 2 is the image diagonal.
    const double sx = im.width > 0 ? 1000.0 / im.width : 1.0;
    const double sy = im.height > 0 ? 1000.0 / im.height : 1.0;
    std::vector<std::vector<double>> cost(pred.size(), std::vector<double>(gt.size()));
    for (size_t i = 0; i < pred.size(); ++i)
      for (size_t j = 0; j < gt.size(); ++j)
        cost[i][j] = std::hypot((pred[i].x - gt[j].x) * sx, (pred[i].y - gt[j].y) * sy);
    const auto assign = hungarian_assign(cost);
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < assign.size(); ++i)
      if (assign[i] >= 0) sum += cost[i][assign[i]], ++n;
    const double mean = sum / static_cast<double>(n);
    const double ratio = static_cast<double>(std::min(pred.size(), gt.size())) /
                         static_cast<double>(std::max(pred.size(), gt.size()));
    return std::max(0.0, ratio * (1.0 - mean / (1000.0 * std::sqrt(2.0))));
  });
}

}  // namespace refract::rewards
