#include "rewards/reward_util.h"

#include "common/check.h"

namespace refract::rewards {

namespace {
const nlohmann::json& declared(const nlohmann::json& s, const char* key) {
  auto it = s.find(key);
  REFRACT_CHECK(it != s.end()) << "reward setting '" << key
                               << "' is read but not declared in rewards/registry.cpp";
  return *it;
}
}  // namespace

double setting_double(const nlohmann::json& s, const char* key) {
  return declared(s, key).get<double>();
}

bool setting_bool(const nlohmann::json& s, const char* key) { return declared(s, key).get<bool>(); }

std::string setting_string(const nlohmann::json& s, const char* key) {
  return declared(s, key).get<std::string>();
}

RewardFn per_sample(SampleFn fn) {
  return [fn = std::move(fn)](const std::vector<RewardInput>& batch) {
    std::vector<std::optional<double>> out;
    out.reserve(batch.size());
    for (const auto& in : batch) out.push_back(fn(in));
    return out;
  };
}

std::string solution_text(const nlohmann::json& sol) {
  std::string s = sol.is_string() ? sol.get<std::string>() : sol.dump();
  if (auto a = extract_answer(s)) return trim(*a);
  return trim(s);
}

std::optional<Box> solution_box(const nlohmann::json& sol) {
  if (sol.is_array() || sol.is_object()) {
    if (auto item = det_item_from_json(sol)) return item->box;
    return std::nullopt;
  }
  if (!sol.is_string()) return std::nullopt;
  const std::string text = solution_text(sol);
  if (auto j = parse_json_lenient(text)) {
    if (auto item = det_item_from_json(*j)) return item->box;
    if (j->is_array() && !j->empty())
      if (auto item = det_item_from_json((*j)[0])) return item->box;
  }
  auto boxes = find_boxes(text);
  if (!boxes.empty()) return boxes[0];
  return std::nullopt;
}

std::vector<DetItem> solution_items(const nlohmann::json& sol) {
  if (sol.is_string()) return parse_det_items(solution_text(sol)).items;
  std::vector<DetItem> out;
  if (sol.is_array()) {
    if (auto one = det_item_from_json(sol)) return {*one};  // a single bare box
    for (const auto& el : sol)
      if (auto item = det_item_from_json(el)) out.push_back(*item);
  } else if (auto item = det_item_from_json(sol)) {
    out.push_back(*item);
  }
  return out;
}

ImageSize first_image(const RewardInput& in) {
  return in.images.empty() ? ImageSize{} : in.images[0];
}

std::optional<std::string> answer_part(const RewardInput& in, bool require_answer_tag) {
  if (auto a = extract_answer(in.completion)) return trim(*a);
  if (require_answer_tag) return std::nullopt;
  return trim(in.completion);
}

}  // namespace refract::rewards
