// Grounding (REC) rewards: one predicted box against one ground-truth box.
#include <cmath>

#include "rewards/builtin.h"
#include "rewards/predicted_boxes.h"
#include "rewards/reward_util.h"

namespace refract::rewards {
namespace {

enum class Overlap { iou, iou_vlm_r1, giou };

// Settings shared by the REC rewards (declared in registry.cpp; docs/rewards.md "Grounding").
struct RecSettings {
  CoordMode coords = CoordMode::absolute_resized;
  bool int_boxes = false;
  bool vlm_r1_iou = false;
  bool require_answer_tag = false;
};

RecSettings rec_settings(const nlohmann::json& s) {
  RecSettings r;
  r.coords = parse_coord_mode(setting_string(s, "coords"));
  r.int_boxes = setting_string(s, "box_pattern") == "int";
  r.vlm_r1_iou = setting_string(s, "iou_convention") == "vlm_r1";
  r.require_answer_tag = setting_bool(s, "require_answer_tag");
  return r;
}

// The overlap of the completion's box with the solution's; nullopt when either is missing.
std::optional<double> rec_overlap(const RewardInput& in, const RecSettings& r, Overlap kind) {
  const auto pred = rec_predicted_box(in, {r.coords, r.int_boxes, r.require_answer_tag});
  auto gt = solution_box(in.solution);
  if (!pred || !gt) return std::nullopt;
  const Box p = *pred;
  switch (kind) {
    case Overlap::iou: return r.vlm_r1_iou ? metrics::iou_vlm_r1(p, *gt) : metrics::iou(p, *gt);
    case Overlap::iou_vlm_r1: return metrics::iou_vlm_r1(p, *gt);
    case Overlap::giou: return metrics::giou(p, *gt);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Box> rec_predicted_box(const RewardInput& in, const BoxReading& r) {
  auto answer = answer_part(in, r.require_answer_tag);
  if (!answer) return std::nullopt;
  std::optional<Box> pred;
  if (r.int_boxes) {
    pred = first_int_box(*answer);
  } else {
    auto boxes = find_boxes(*answer);
    if (!boxes.empty()) pred = boxes[0];
    else {
      auto tokens = parse_qwen2_box_tokens(*answer);
      if (!tokens.empty()) pred = tokens[0].box;
    }
  }
  if (!pred) return std::nullopt;
  return to_original(*pred, first_image(in), r.coords);
}

// Continuous IoU; a completion without a parsable box scores 0.
// ref: VLM-R1 grpo_rec.py iou_reward (current version returns the IoU itself).
RewardFn make_iou(const nlohmann::json& s) {
  const RecSettings r = rec_settings(s);
  return per_sample([r](const RewardInput& in) -> std::optional<double> {
    return rec_overlap(in, r, Overlap::iou).value_or(0.0);
  });
}

// 1 if IoU > threshold (strict; default 0.5). ref: early VLM-R1 iou_reward; REC Acc@0.5.
RewardFn make_iou_threshold(const nlohmann::json& s) {
  const RecSettings r = rec_settings(s);
  const double thr = setting_double(s, "threshold");
  return per_sample([r, thr](const RewardInput& in) -> std::optional<double> {
    return rec_overlap(in, r, Overlap::iou).value_or(0.0) > thr ? 1.0 : 0.0;
  });
}

// IoU^2 (Perception-R1 grounding reward).
RewardFn make_iou_squared(const nlohmann::json& s) {
  const RecSettings r = rec_settings(s);
  return per_sample([r](const RewardInput& in) -> std::optional<double> {
    const double v = rec_overlap(in, r, Overlap::iou).value_or(0.0);
    return v * v;
  });
}

// GIoU + 1, range 0..2; no box -> 0 (Visual-RFT LISA grounding reward).
RewardFn make_giou_plus_one(const nlohmann::json& s) {
  const RecSettings r = rec_settings(s);
  return per_sample([r](const RewardInput& in) -> std::optional<double> {
    auto g = rec_overlap(in, r, Overlap::giou);
    return g ? *g + 1.0 : 0.0;
  });
}

}  // namespace refract::rewards
