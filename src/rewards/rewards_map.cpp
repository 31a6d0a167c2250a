// COCO-mAP rewards between one completion's boxes and its ground-truth list.
// ref: VLM-R1 grpo_jsonl.py calculate_map / map_reward and its od variants.
#include <algorithm>
#include <map>

#include "metrics/coco_eval.h"
#include "rewards/builtin.h"
#include "rewards/det_common.h"

namespace refract::rewards {
namespace {

enum class MapStat { ap, ap50, ap_length };

struct MapSettings {
  CoordMode coords;
  bool tag;
  bool use_confidence;
};

// COCOeval on one fake image: GT categories from the GT labels (first-seen order), every
// prediction scored 1 (VLM-R1) unless use_confidence, predictions whose label is not among
// the GT labels dropped. Both lists empty -> 1, exactly one empty -> 0.
double map_score(const DetSample& d, const MapSettings& st, MapStat stat) {
  if (d.gt.empty() && d.pred.empty()) return d.parsed ? 1.0 : 0.0;
  if (d.gt.empty() || d.pred.empty()) return 0.0;
  metrics::CocoGroundTruth gt;
  gt.image_ids = {0};
  std::map<std::string, int64_t> cats;
  for (size_t i = 0; i < d.gt.size(); ++i) {
    const auto& g = d.gt[i];
    auto it = cats.find(g.label);
    if (it == cats.end()) {
      it = cats.emplace(g.label, static_cast<int64_t>(cats.size())).first;
      gt.categories.push_back({it->second, g.label});
    }
    metrics::CocoAnnotation a;
    a.id = static_cast<int64_t>(i) + 1;
    a.image_id = 0;
    a.category_id = it->second;
    a.x = g.box.x1;
    a.y = g.box.y1;
    a.w = g.box.x2 - g.box.x1;
    a.h = g.box.y2 - g.box.y1;
    a.area = a.w * a.h;
    gt.annotations.push_back(a);
  }
  std::vector<metrics::CocoDetection> dt;
  for (const auto& p : d.pred) {
    auto it = cats.find(p.label);
    if (it == cats.end()) continue;  // ref: KeyError in cats2id -> skipped
    metrics::CocoDetection det;
    det.image_id = 0;
    det.category_id = it->second;
    det.x = p.box.x1;
    det.y = p.box.y1;
    det.w = p.box.x2 - p.box.x1;
    det.h = p.box.y2 - p.box.y1;
    det.score = st.use_confidence ? p.confidence.value_or(1.0) : 1.0;
    dt.push_back(det);
  }
  if (dt.empty()) return 0.0;
  const auto res = metrics::coco_evaluate(gt, dt);
  const double ap = std::max(0.0, res.stats[0]);
  switch (stat) {
    case MapStat::ap: return ap;
    case MapStat::ap50: return std::max(0.0, res.stats[1]);
    case MapStat::ap_length: {
      // ref: VLM-R1 odLength: mAP x min(1, N_gt / N_pred) penalises flooding with boxes.
      const double ratio = static_cast<double>(d.gt.size()) / static_cast<double>(d.pred.size());
      return ap * std::min(1.0, ratio);
    }
  }
  return 0.0;
}

RewardFn make_map_reward(const nlohmann::json& s, MapStat stat) {
  MapSettings st{det_coords(s), setting_bool(s, "require_answer_tag"),
                 setting_bool(s, "use_confidence")};
  return per_sample([st, stat](const RewardInput& in) -> std::optional<double> {
    return map_score(read_det_sample(in, st.coords, st.tag), st, stat);
  });
}

}  // namespace

RewardFn make_det_map(const nlohmann::json& s) { return make_map_reward(s, MapStat::ap); }
RewardFn make_od_ap(const nlohmann::json& s) { return make_map_reward(s, MapStat::ap); }
RewardFn make_od_ap50(const nlohmann::json& s) { return make_map_reward(s, MapStat::ap50); }
RewardFn make_od_length(const nlohmann::json& s) {
  return make_map_reward(s, MapStat::ap_length);
}

}  // namespace refract::rewards
