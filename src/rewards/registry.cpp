#include "rewards/registry.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "common/check.h"
#include "rewards/builtin.h"
#include "rewards/external_reward.h"

namespace refract::rewards {
namespace {

enum class Type { boolean, integer, number, string };

const char* type_name(Type t) {
  switch (t) {
    case Type::boolean: return "boolean";
    case Type::integer: return "integer";
    case Type::number: return "number";
    case Type::string: return "string";
  }
  return "";
}

struct Setting {
  const char* name;
  Type type;
  nlohmann::json def;
  const char* help;
  std::vector<std::string> choices = {};
};

struct Entry {
  std::string name;
  RewardFn (*make)(const nlohmann::json&);  // nullptr for external:<command>
  const char* description;
  std::vector<Setting> settings;
  // A string setting naming another reward whose settings this one also accepts and hands on.
  const char* settings_of = "";
};

using Settings = std::vector<Setting>;

Settings cat(std::initializer_list<Settings> parts) {
  Settings out;
  for (const auto& p : parts)
    for (const auto& s : p) {
      auto same = [&](const Setting& o) { return std::string(o.name) == s.name; };
      auto it = std::find_if(out.begin(), out.end(), same);
      if (it == out.end()) {
        out.push_back(s);
        continue;
      }
      // A composite reward (accuracy) hands one value to several inner rewards.
      REFRACT_CHECK(it->type == s.type && it->def == s.def)
          << "reward settings: '" << s.name << "' declared twice with different types or defaults";
    }
  return out;
}

// The declarations: every setting of every built-in reward, with its default, in one place.
// The reward code reads the settings already completed with these defaults and checked.
const std::vector<Entry>& entries() {
  static const std::vector<Entry> kEntries = [] {
    const Settings coords = {
        {"coords", Type::string, "absolute_resized",
         "how predicted boxes map to the original image (GRPO coordinate_format)",
         {"absolute_resized", "normalized_1000", "absolute"}}};
    const Settings tag = {{"require_answer_tag", Type::boolean, false,
                           "score 0 when the completion has no <answer> (VLM-R1)"}};
    const Settings rec = cat(
        {coords,
         {{"box_pattern", Type::string, "number",
           "boxes read from the answer: number (any [a,b,c,d]) or int (VLM-R1's pattern)",
           {"number", "int"}},
          {"iou_convention", Type::string, "continuous",
           "continuous IoU, or VLM-R1's mixed pixel convention", {"continuous", "vlm_r1"}}},
         tag});
    const Settings visual_rft = cat(
        {coords,
         {{"iou_threshold", Type::number, 0.5, "a prediction matches a GT box if IoU > this"},
          {"match_labels", Type::boolean, false, "match only boxes of the same label"}},
         tag});
    const Settings pr1 = cat(
        {coords, tag,
         {{"iou_threshold", Type::number, 0.5, "matched pairs count if IoU > this"},
          {"cost_l1", Type::number, 5.0, "matching cost weight of the normalised L1 distance"},
          {"cost_giou", Type::number, 2.0, "matching cost weight of -GIoU"},
          {"cost_class", Type::number, 1.0, "matching cost weight of -[labels equal]"},
          {"format_weight", Type::number, 0.25, "weight of the fraction of valid entries"},
          {"f1_weight", Type::number, 0.75, "weight of F1"},
          {"cls_weight", Type::number, 1.0, "weight of the label accuracy"},
          {"iou_weight", Type::number, 1.0, "weight of the mean IoU"},
          {"missing_penalty", Type::boolean, false,
           "subtract 0.5 (FP / N_pred + FN / N_gt)"}}});
    const Settings map = cat(
        {coords, tag,
         {{"use_confidence", Type::boolean, false,
           "rank predictions by the model's confidence (default: every score 1, VLM-R1)"}}});
    const Settings format = {{"format_pattern", Type::string,
                              R"(<think>.*?</think>\s*<answer>.*?</answer>)",
                              "regex the whole completion must match (GRPO format_pattern)"}};
    const Settings rec_format = {
        {"format_pattern", Type::string,
         R"(<think>.*?</think>\s*<answer>.*?\{.*\[\d+,\s*\d+,\s*\d+,\s*\d+\].*\}.*?</answer>)",
         "regex searched in the completion (GRPO format_pattern)"}};
    const Settings ocr = {{"lowercase", Type::boolean, false, "compare lowercased text"}};
    const Settings accuracy = cat(
        {{{"reward_method", Type::string, "default",
           "accu_reward_method of samples without one",
           {"default", "mcq", "yes_no", "all_match", "iou", "rec", "map", "det", "ocr", "count",
            "cls"}}},
         rec, map, ocr, tag});
    const Settings cosine = {
        {"cosine_min_value_wrong", Type::number, -0.5, "reward of a wrong answer at length 0"},
        {"cosine_max_value_wrong", Type::number, 0.0, "reward of a wrong answer at L_max"},
        {"cosine_min_value_correct", Type::number, 0.5, "reward of a correct answer at L_max"},
        {"cosine_max_value_correct", Type::number, 1.0, "reward of a correct answer at length 0"},
        {"cosine_max_len", Type::integer, 0, "L_max in tokens (0: max_completion_length)"},
        {"cosine_correct_threshold", Type::number, 1.0,
         "correct if the inner reward is >= this"},
        {"cosine_accuracy_reward", Type::string, "accuracy",
         "the inner reward that decides correctness (its settings are accepted too)"}};
    const Settings repetition = {
        {"repetition_ngram_size", Type::integer, 6, "n of the word n-grams (ms-swift uses 3)"},
        {"repetition_max_penalty", Type::number, -1.0, "reward when every n-gram repeats"}};
    const Settings soft_overlong = {
        {"max_completion_len", Type::integer, 0,
         "length that scores -1 (0: the trainer's max_completion_length)"},
        {"soft_punish_cache", Type::integer, 0,
         "tokens before max_completion_len where the penalty ramps from 0 to -1"}};
    return std::vector<Entry>{
        {"format", make_format, "1 if the output fully matches <think>..</think><answer>..</answer>", format},
        {"rec_format", make_rec_format, "1 if think/answer tags with a {..[x1,y1,x2,y2]..} answer", rec_format},
        {"iou", make_iou, "IoU of the answer's box with the ground-truth box", rec},
        {"iou_threshold", make_iou_threshold, "1 if IoU > threshold (0.5)",
         cat({rec, {{"threshold", Type::number, 0.5, "score 1 if IoU > this (strict)"}}})},
        {"iou_squared", make_iou_squared, "IoU^2 (Perception-R1)", rec},
        {"giou_plus_one", make_giou_plus_one, "GIoU + 1 in 0..2 (Visual-RFT LISA)", rec},
        {"det_iou", make_det_iou, "Visual-RFT: matched IoU sum / max(N_gt, N_pred)", visual_rft},
        {"det_confidence", make_det_confidence, "Visual-RFT: mean of c if matched else 1 - c", visual_rft},
        {"det_pr1", make_det_pr1, "Perception-R1: Hungarian format + F1 + label + IoU, 0..3", pr1},
        {"det_map", make_det_map, "COCO mAP@[.5:.95] of the answer's boxes (VLM-R1 map)", map},
        {"od_ap", make_od_ap, "COCO AP (stats[0]) of the answer's boxes", map},
        {"od_ap50", make_od_ap50, "COCO AP50 (stats[1]) of the answer's boxes", map},
        {"od_length", make_od_length, "mAP x min(1, N_gt / N_pred) (VLM-R1 odLength)", map},
        {"weighted_sum", make_weighted_sum, "VLM-R1: 0.7 mean IoU + 0.3 (1 - miss/false-alarm rate)",
         cat({coords, tag,
              {{"iou_threshold", Type::number, 0.5, "a prediction matches a GT box if IoU >= this"}}})},
        {"count", make_count, "1 if the answer's count equals the solution's", tag},
        {"count_pr1", make_count_pr1, "Perception-R1: count ratio x (1 - mean point distance)",
         cat({coords, tag})},
        {"cls", make_cls, "Visual-RFT: 1 if either normalised label contains the other", {}},
        {"cls_exact", make_cls_exact, "1 if the normalised labels are equal", {}},
        {"ocr", make_ocr, "1 - edit distance / max length", ocr},
        {"mcq", make_mcq, "1 if the option letter matches", {}},
        {"yes_no", make_yes_no, "1 if yes/no matches", {}},
        {"all_match", make_all_match, "1 if equal after trim, final '.', lowercase", {}},
        {"accuracy", make_accuracy, "VLM-R1 accuracy: dispatch by accu_reward_method", accuracy},
        {"cosine", make_cosine, "length-scaled correctness (cosine schedule)", cosine,
         "cosine_accuracy_reward"},
        {"repetition", make_repetition, "-(1 - unique n-grams / n-grams)", repetition},
        {"soft_overlong", make_soft_overlong, "DAPO soft overlong punishment", soft_overlong},
    };
  }();
  return kEntries;
}

constexpr std::string_view kExternalPrefix = "external:";

const Entry& external_entry() {
  static const Entry kExternal{
      "external:<command>", nullptr,
      "your program: one JSON line per batch on its stdin, {\"rewards\": [..]} back",
      {{"timeout_seconds", Type::number, 60.0, "a slower reply is an error"}}};
  return kExternal;
}

bool is_external(const std::string& name) {
  return name.compare(0, kExternalPrefix.size(), kExternalPrefix) == 0;
}

const Entry& entry_of(const std::string& name) {
  if (is_external(name)) {
    REFRACT_CHECK(name.size() > kExternalPrefix.size())
        << "external reward: empty command (use external:<command>)";
    return external_entry();
  }
  for (const auto& e : entries())
    if (name == e.name) return e;
  std::string known;
  for (const auto& e : entries()) known += (known.empty() ? "" : ", ") + e.name;
  REFRACT_FAIL() << "unknown reward '" << name << "'; known: " << known << ", external:<command>";
  return entries()[0];
}

std::string join_names(const std::vector<const Setting*>& specs) {
  std::string out;
  for (const auto* s : specs) out += (out.empty() ? "" : ", ") + std::string(s->name);
  return out;
}

// Checks one value against its declaration; an integral number given as 20.0 becomes 20.
void check_value(const Setting& s, nlohmann::json& v, const std::string& where) {
  bool ok = false;
  switch (s.type) {
    case Type::boolean: ok = v.is_boolean(); break;
    case Type::number: ok = v.is_number(); break;
    case Type::string: ok = v.is_string(); break;
    case Type::integer:
      if (v.is_number_float() && std::isfinite(v.get<double>()) &&
          v.get<double>() == std::floor(v.get<double>()))
        v = static_cast<int64_t>(v.get<double>());
      ok = v.is_number_integer();
      break;
  }
  REFRACT_CHECK(ok) << where << ": setting '" << s.name << "' must be "
                    << (s.type == Type::integer ? "an " : "a ") << type_name(s.type) << ", got "
                    << v.dump();
  if (s.choices.empty()) return;
  const std::string got = v.get<std::string>();
  if (std::find(s.choices.begin(), s.choices.end(), got) != s.choices.end()) return;
  std::string allowed;
  for (const auto& c : s.choices) allowed += (allowed.empty() ? "" : ", ") + c;
  REFRACT_FAIL() << where << ": setting '" << s.name << "' is '" << got
                 << "', not one of: " << allowed;
}

const Setting* find_setting(const std::vector<const Setting*>& specs, const std::string& key) {
  for (const auto* s : specs)
    if (key == s->name) return s;
  return nullptr;
}

// The settings `e` accepts: its own, plus those of the reward its `settings_of` setting names
// (read from `user`, else `common`, else the default).
std::vector<const Setting*> accepted_settings(const Entry& e, const nlohmann::json& user,
                                              const nlohmann::json& common,
                                              const std::string& where) {
  std::vector<const Setting*> specs;
  for (const auto& s : e.settings) specs.push_back(&s);
  if (!*e.settings_of) return specs;
  const Setting* of = find_setting(specs, e.settings_of);
  nlohmann::json inner_name = of->def;
  for (const auto* src : {&common, &user})
    if (src->contains(e.settings_of)) inner_name = src->at(e.settings_of);
  check_value(*of, inner_name, where);
  const Entry& inner = entry_of(inner_name.get<std::string>());
  REFRACT_CHECK(!*inner.settings_of)
      << where << ": setting '" << e.settings_of << "' cannot name " << inner.name
      << " (it nests another reward itself)";
  for (const auto& s : inner.settings)
    if (!find_setting(specs, s.name)) specs.push_back(&s);
  return specs;
}

// The complete settings of reward `name`: declared defaults, then the `common` values of
// settings it declares, then `user` (every key must be declared). Values are type-checked.
nlohmann::json complete_settings(const std::string& name, const nlohmann::json& user_in,
                                 const nlohmann::json& common, const std::string& where) {
  const nlohmann::json user = user_in.is_null() ? nlohmann::json::object() : user_in;
  REFRACT_CHECK(user.is_object()) << where << ": settings must be a mapping of setting: value, got "
                                  << user.dump();
  const Entry& e = entry_of(name);
  const auto specs = accepted_settings(e, user, common, where);
  nlohmann::json out = nlohmann::json::object();
  for (const auto* s : specs) out[s->name] = s->def;
  for (const auto& [key, value] : common.items()) {
    const Setting* s = find_setting(specs, key);
    if (!s) continue;  // a common setting this reward does not use
    nlohmann::json v = value;
    check_value(*s, v, where);
    out[key] = std::move(v);
  }
  for (const auto& [key, value] : user.items()) {
    const Setting* s = find_setting(specs, key);
    if (!s) {
      if (specs.empty())
        REFRACT_FAIL() << where << " has no setting '" << key << "'; it has no settings";
      REFRACT_FAIL() << where << " has no setting '" << key << "'; its settings: "
                     << join_names(specs) << " (refract rewards --list)";
    }
    nlohmann::json v = value;
    check_value(*s, v, where);
    out[key] = std::move(v);
  }
  return out;
}

RewardFn make_from_complete(const std::string& name, const nlohmann::json& complete) {
  if (is_external(name)) return make_external_reward(name.substr(kExternalPrefix.size()), complete);
  return entry_of(name).make(complete);
}

SettingInfo info_of(const Setting& s) {
  return {s.name, type_name(s.type), s.def, s.help, s.choices};
}

}  // namespace

RewardFn make_reward(const std::string& name, const nlohmann::json& settings) {
  const std::string where = "reward '" + name + "'";
  return make_from_complete(name,
                            complete_settings(name, settings, nlohmann::json::object(), where));
}

RewardFn make_inner_reward(const std::string& name, const nlohmann::json& outer_settings) {
  const std::string where = "reward '" + name + "'";
  return make_from_complete(
      name, complete_settings(name, nlohmann::json::object(), outer_settings, where));
}

void validate_reward_kwargs(const std::vector<std::string>& names,
                            const nlohmann::json& reward_kwargs) {
  for (const auto& n : names) entry_of(n);
  if (reward_kwargs.is_null()) return;
  REFRACT_CHECK(reward_kwargs.is_object())
      << "reward_kwargs must be a mapping {reward name: {setting: value}}, got "
      << reward_kwargs.dump();
  for (const auto& [name, settings] : reward_kwargs.items()) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      REFRACT_FAIL() << "reward_kwargs: '" << name << "' is not one of reward_funcs [" << list
                     << "]";
    }
    complete_settings(name, settings, nlohmann::json::object(),
                      "reward_kwargs: reward '" + name + "'");
  }
}

std::vector<RewardFn> build_rewards(const std::vector<std::string>& names,
                                    const nlohmann::json& reward_kwargs,
                                    const CommonSettings& common) {
  validate_reward_kwargs(names, reward_kwargs);
  nlohmann::json c = {{"coords", common.coords}};
  if (!common.format_pattern.empty()) c["format_pattern"] = common.format_pattern;
  std::vector<RewardFn> out;
  for (const auto& name : names) {
    nlohmann::json user = nlohmann::json::object();
    if (reward_kwargs.is_object() && reward_kwargs.contains(name)) user = reward_kwargs.at(name);
    out.push_back(make_from_complete(
        name, complete_settings(name, user, c, "reward_kwargs: reward '" + name + "'")));
  }
  return out;
}

const std::vector<RewardInfo>& reward_infos() {
  static const std::vector<RewardInfo> kInfos = [] {
    std::vector<const Entry*> all;
    for (const auto& e : entries()) all.push_back(&e);
    all.push_back(&external_entry());
    std::vector<RewardInfo> out;
    for (const Entry* e : all) {
      RewardInfo info{e->name, e->description, {}, e->settings_of};
      for (const auto& s : e->settings) info.settings.push_back(info_of(s));
      out.push_back(std::move(info));
    }
    return out;
  }();
  return kInfos;
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
