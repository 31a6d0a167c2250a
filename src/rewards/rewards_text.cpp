// Text-answer rewards: classification, OCR, multiple choice, yes/no, exact match, and
// VLM-R1's `accuracy` dispatch by accu_reward_method.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>

#include "common/check.h"
#include "metrics/text_distance.h"
#include "rewards/builtin.h"
#include "rewards/reward_util.h"

namespace refract::rewards {
namespace {

// Visual-RFT classification normalisation: lowercase, drop spaces and '_'.
std::string cls_normalise(std::string_view s) {
  std::string out;
  for (char c : to_lower(trim(s)))
    if (c != ' ' && c != '_') out += c;
  return out;
}

// Python float(): the whole (trimmed) string must be a number.
std::optional<double> python_float(const std::string& s) {
  const std::string t = trim(s);
  if (t.empty()) return std::nullopt;
  std::string no_us;
  for (char c : t)
    if (c != '_') no_us += c;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(no_us.c_str(), &end);
  if (end != no_us.c_str() + no_us.size()) return std::nullopt;
  return d;
}

// The student answer as VLM-R1 reads it: the LAST complete <answer> body, else the whole text.
std::string last_answer_or_text(const std::string& text) {
  std::optional<std::string> last;
  size_t from = 0;
  while (true) {
    const size_t b = text.find("<answer>", from);
    if (b == std::string::npos) break;
    const size_t e = text.find("</answer>", b + 8);
    if (e == std::string::npos) break;
    last = text.substr(b + 8, e - b - 8);
    from = e + 9;
  }
  return trim(last ? *last : text);
}

}  // namespace

double default_accuracy_score(const std::string& completion, const std::string& solution) {
  // ref: VLM-R1 grpo_jsonl.py default_accuracy_reward, without its math_verify step
  // (symbolic equivalence); plain numbers are covered by the numeric comparison below.
  const std::string gt = trim(solution);
  const std::string student = last_answer_or_text(completion);
  const bool has_digits = gt.find_first_of("0123456789") != std::string::npos;
  if (has_digits) {
    auto a = python_float(clean_text(student)), b = python_float(clean_text(gt));
    if (a && b) return *a == *b ? 1.0 : 0.0;
    return metrics::indel_ratio(clean_text(student), clean_text(gt));
  }
  if (auto choice = parse_option_letter(gt)) {
    auto got = parse_option_letter(student);
    return got && *got == *choice ? 1.0 : 0.0;
  }
  return metrics::indel_ratio(clean_text(student), clean_text(gt));
}

double mcq_score(const std::string& completion, const std::string& solution) {
  // ref: VLM-R1 mcq_reward: the solution's letter, or the stripped solution if it has none.
  auto sol_choice = parse_option_letter(solution);
  const std::string correct = sol_choice ? std::string(1, *sol_choice) : trim(solution);
  auto got = parse_option_letter(answer_or_text(completion));
  return got && std::string(1, *got) == correct ? 1.0 : 0.0;
}

double yes_no_score(const std::string& completion, const std::string& solution) {
  // Both sides must state yes or no (VLM-R1 also rewards two answers that state neither).
  auto want = parse_yes_no(solution);
  auto got = parse_yes_no(answer_or_text(completion));
  return want && got && *want == *got ? 1.0 : 0.0;
}

double all_match_score(const std::string& completion, const std::string& solution) {
  auto norm = [](std::string_view s) {
    std::string t = trim(s);
    if (!t.empty() && t.back() == '.') t.pop_back();
    return to_lower(trim(t));
  };
  return norm(answer_or_text(completion)) == norm(solution) ? 1.0 : 0.0;
}

// 1 if either normalised string contains the other (Visual-RFT; an empty answer scores 1).
RewardFn make_cls(const nlohmann::json&) {
  return per_sample([](const RewardInput& in) -> std::optional<double> {
    const std::string got = cls_normalise(answer_or_text(in.completion));
    const std::string want = cls_normalise(solution_text(in.solution));
    return got.find(want) != std::string::npos || want.find(got) != std::string::npos ? 1.0 : 0.0;
  });
}

// 1 if the normalised strings are equal and non-empty (the ungameable variant of `cls`).
RewardFn make_cls_exact(const nlohmann::json&) {
  return per_sample([](const RewardInput& in) -> std::optional<double> {
    const std::string got = cls_normalise(answer_or_text(in.completion));
    return !got.empty() && got == cls_normalise(solution_text(in.solution)) ? 1.0 : 0.0;
  });
}

// 1 - Levenshtein / max(len) on code points (PR1 OCR reward). Setting `lowercase` (false).
RewardFn make_ocr(const nlohmann::json& s) {
  const bool lower = setting_bool(s, "lowercase");
  return per_sample([lower](const RewardInput& in) -> std::optional<double> {
    std::string got = answer_or_text(in.completion), want = solution_text(in.solution);
    if (lower) got = to_lower(got), want = to_lower(want);
    return metrics::edit_similarity(got, want);
  });
}

RewardFn make_mcq(const nlohmann::json&) {
  return per_sample([](const RewardInput& in) -> std::optional<double> {
    return mcq_score(in.completion, solution_text(in.solution));
  });
}

RewardFn make_yes_no(const nlohmann::json&) {
  return per_sample([](const RewardInput& in) -> std::optional<double> {
    return yes_no_score(in.completion, solution_text(in.solution));
  });
}

RewardFn make_all_match(const nlohmann::json&) {
  return per_sample([](const RewardInput& in) -> std::optional<double> {
    return all_match_score(in.completion, solution_text(in.solution));
  });
}

// VLM-R1 `accuracy`: per sample, by reward_method (accu_reward_method):
//   "" | default -> numeric equality / option letter / fuzzy ratio; mcq; yes_no; all_match;
//   iou | rec -> iou; map | det -> det_map; ocr; count; cls.
// The default for samples without a method is the setting `reward_method` ("default").
RewardFn make_accuracy(const nlohmann::json& s) {
  const std::string fallback = setting_string(s, "reward_method");
  auto table = std::make_shared<std::map<std::string, RewardFn>>();
  (*table)["default"] = per_sample([](const RewardInput& in) -> std::optional<double> {
    return default_accuracy_score(in.completion, solution_text(in.solution));
  });
  (*table)["mcq"] = make_mcq(s);
  (*table)["yes_no"] = make_yes_no(s);
  (*table)["all_match"] = make_all_match(s);
  (*table)["iou"] = (*table)["rec"] = make_iou(s);
  (*table)["map"] = (*table)["det"] = make_det_map(s);
  (*table)["ocr"] = make_ocr(s);
  (*table)["count"] = make_count(s);
  (*table)["cls"] = make_cls(s);
  return [table, fallback](const std::vector<RewardInput>& batch) {
    std::vector<std::optional<double>> out;
    out.reserve(batch.size());
    for (const auto& in : batch) {
      const std::string& m = in.reward_method.empty() ? fallback : in.reward_method;
      auto it = table->find(m);
      REFRACT_CHECK(it != table->end())
          << "reward accuracy: unknown accu_reward_method '" << m
          << "' (one of: default, mcq, yes_no, all_match, iou, rec, map, det, ocr, count, cls)";
      out.push_back(it->second({in})[0]);
    }
    return out;
  };
}

}  // namespace refract::rewards
