#include "rewards/registry.h"

#include "common/check.h"
#include "rewards/builtin.h"
#include "rewards/external_reward.h"

namespace refract::rewards {
namespace {

struct Entry {
  const char* name;
  RewardFn (*make)(const nlohmann::json&);
  const char* description;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> kEntries = {
      {"format", make_format, "1 if the output fully matches <think>..</think><answer>..</answer>"},
      {"rec_format", make_rec_format, "1 if think/answer tags with a {..[x1,y1,x2,y2]..} answer"},
      {"iou", make_iou, "IoU of the answer's box with the ground-truth box"},
      {"iou_threshold", make_iou_threshold, "1 if IoU > threshold (0.5)"},
      {"iou_squared", make_iou_squared, "IoU^2 (Perception-R1)"},
      {"giou_plus_one", make_giou_plus_one, "GIoU + 1 in 0..2 (Visual-RFT LISA)"},
      {"det_iou", make_det_iou, "Visual-RFT: matched IoU sum / max(N_gt, N_pred)"},
      {"det_confidence", make_det_confidence, "Visual-RFT: mean of c if matched else 1 - c"},
      {"det_pr1", make_det_pr1, "Perception-R1: Hungarian format + F1 + label + IoU, 0..3"},
      {"det_map", make_det_map, "COCO mAP@[.5:.95] of the answer's boxes (VLM-R1 map)"},
      {"od_ap", make_od_ap, "COCO AP (stats[0]) of the answer's boxes"},
      {"od_ap50", make_od_ap50, "COCO AP50 (stats[1]) of the answer's boxes"},
      {"od_length", make_od_length, "mAP x min(1, N_gt / N_pred) (VLM-R1 odLength)"},
      {"weighted_sum", make_weighted_sum, "VLM-R1: 0.7 mean IoU + 0.3 (1 - miss/false-alarm rate)"},
      {"count", make_count, "1 if the answer's count equals the solution's"},
      {"count_pr1", make_count_pr1, "Perception-R1: count ratio x (1 - mean point distance)"},
      {"cls", make_cls, "Visual-RFT: 1 if either normalised label contains the other"},
      {"cls_exact", make_cls_exact, "1 if the normalised labels are equal"},
      {"ocr", make_ocr, "1 - edit distance / max length"},
      {"mcq", make_mcq, "1 if the option letter matches"},
      {"yes_no", make_yes_no, "1 if yes/no matches"},
      {"all_match", make_all_match, "1 if equal after trim, final '.', lowercase"},
      {"accuracy", make_accuracy, "VLM-R1 accuracy: dispatch by accu_reward_method"},
      {"cosine", make_cosine, "length-scaled correctness (cosine schedule)"},
      {"repetition", make_repetition, "-(1 - unique n-grams / n-grams)"},
      {"soft_overlong", make_soft_overlong, "DAPO soft overlong punishment"},
  };
  return kEntries;
}

}  // namespace

RewardFn make_reward(const std::string& name, const nlohmann::json& settings) {
  static const std::string kExternal = "external:";
  if (name.compare(0, kExternal.size(), kExternal) == 0)
    return make_external_reward(name.substr(kExternal.size()), settings);
  for (const auto& e : entries())
    if (name == e.name) return e.make(settings);
  std::string known;
  for (const auto& e : entries()) known += (known.empty() ? "" : ", ") + std::string(e.name);
  REFRACT_FAIL() << "unknown reward '" << name << "'; known: " << known
                 << ", external:<command>";
  return {};
}

std::vector<std::string> reward_names() {
  std::vector<std::string> out;
  for (const auto& e : entries()) out.push_back(e.name);
  return out;
}

std::string reward_description(const std::string& name) {
  for (const auto& e : entries())
    if (name == e.name) return e.description;
  return "";
}

}  // namespace refract::rewards
