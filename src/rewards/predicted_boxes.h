// The boxes a completion states, read exactly as the grounding and detection rewards read them
// (the answer part, the first box / the JSON list or Qwen2-VL box tokens, coordinates mapped to
// original-image pixels), for tools that show what was scored (`refract dashboard`).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "rewards/answer_parser.h"
#include "rewards/coords.h"
#include "rewards/reward.h"

namespace refract::rewards {

struct BoxReading {
  CoordMode coords = CoordMode::absolute_resized;
  bool int_boxes = false;           // rec: box_pattern int (VLM-R1's [\d+, \d+, \d+, \d+])
  bool require_answer_tag = false;  // no <answer> -> no box
};

// The one box the REC rewards (iou, iou_threshold, giou_plus_one, ...) score; nullopt when
// they find none (and score 0).
std::optional<Box> rec_predicted_box(const RewardInput& in, const BoxReading& reading);

// Every object the detection rewards (det_iou, det_pr1, map, ...) read from the answer, boxes
// in original-image pixels, in answer order.
std::vector<DetItem> det_predicted_items(const RewardInput& in, const BoxReading& reading);

// The ground-truth boxes of a solution as the rewards read them (original-image pixels): task
// det the list of objects, otherwise the one REC box ([x1,y1,x2,y2], {"bbox_2d": ..} or a
// string holding either); empty when the solution states none.
std::vector<DetItem> solution_boxes(const nlohmann::json& solution, const std::string& task);

// One-to-one matching of predictions to ground truth for display: predictions in descending
// confidence (answer order on ties) each take the unused ground-truth box of highest IoU, kept
// when IoU > iou_threshold (Visual-RFT's det_iou rule; COCO's at 0.5). Returns, per
// prediction, the index of its ground-truth box or -1.
std::vector<int> match_predictions(const std::vector<DetItem>& pred, const std::vector<DetItem>& gt,
                                   double iou_threshold = 0.5);

}  // namespace refract::rewards
