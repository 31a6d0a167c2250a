// Shaping rewards that depend on length or repetition rather than correctness alone.
#include <cmath>
#include <set>
#include <sstream>

#include "metrics/text_distance.h"
#include "rewards/builtin.h"
#include "rewards/reward_util.h"

namespace refract::rewards {
namespace {

// Completion length in tokens; code points when token ids are not available.
double completion_length(const RewardInput& in) {
  if (!in.completion_ids.empty()) return static_cast<double>(in.completion_ids.size());
  return static_cast<double>(metrics::utf8_codepoints(in.completion).size());
}

}  // namespace

// Cosine length scaling (Demystifying Long CoT; open-r1 get_cosine_scaled_reward):
// r = lo + (hi - lo)(1 + cos(pi L / L_max)) / 2, i.e. hi at L = 0 and lo at L = L_max, with
// (hi, lo) = (max_value_correct, min_value_correct) when correct and
// (min_value_wrong, max_value_wrong) when wrong. Correct means the inner reward
// (`cosine_accuracy_reward`, default "accuracy") >= `cosine_correct_threshold` (default 1.0).
// note: VLM-R1's copy treated every answer as correct; this one asks the inner reward.
RewardFn make_cosine(const nlohmann::json& s) {
  const double min_wrong = setting_double(s, "cosine_min_value_wrong");
  const double max_wrong = setting_double(s, "cosine_max_value_wrong");
  const double min_correct = setting_double(s, "cosine_min_value_correct");
  const double max_correct = setting_double(s, "cosine_max_value_correct");
  const double max_len = setting_double(s, "cosine_max_len");  // 0: max_completion_length
  const double thr = setting_double(s, "cosine_correct_threshold");
  // The settings also hold the inner reward's (registry.cpp: cosine's settings_of).
  RewardFn inner = make_inner_reward(setting_string(s, "cosine_accuracy_reward"), s);
  return [=](const std::vector<RewardInput>& batch) {
    const auto acc = inner(batch);
    std::vector<std::optional<double>> out;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!acc[i]) {
        out.push_back(std::nullopt);
        continue;
      }
      const double lmax = max_len > 0 ? max_len : static_cast<double>(batch[i].max_completion_length);
      const double progress = lmax > 0 ? std::min(1.0, completion_length(batch[i]) / lmax) : 0.0;
      const bool correct = *acc[i] >= thr;
      const double hi = correct ? max_correct : min_wrong;
      const double lo = correct ? min_correct : max_wrong;
      out.push_back(lo + 0.5 * (hi - lo) * (1.0 + std::cos(progress * M_PI)));
    }
    return out;
  };
}

// Repetition penalty: (1 - unique n-grams / total n-grams) * max_penalty (default -1).
// Units: for an answer that is a JSON list of boxes, n = 1 over (box, label) items (VLM-R1);
// otherwise lowercase whitespace words in `repetition_ngram_size`-grams (default 6; ms-swift
// uses 3). Fewer units than n -> 0.
RewardFn make_repetition(const nlohmann::json& s) {
  const double n_setting = setting_double(s, "repetition_ngram_size");
  const double max_penalty = setting_double(s, "repetition_max_penalty");
  const size_t ngram = n_setting >= 1 ? static_cast<size_t>(n_setting) : 1;
  return per_sample([=](const RewardInput& in) -> std::optional<double> {
    std::vector<std::string> units;
    size_t n = ngram;
    const std::string answer = answer_or_text(in.completion);
    auto j = parse_json_lenient(answer);
    if (j && j->is_array() && !j->empty() && (*j)[0].is_object()) {
      for (const auto& el : *j) units.push_back(el.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      n = 1;
    } else {
      std::istringstream words(to_lower(in.completion));
      std::string w;
      while (words >> w) units.push_back(w);
    }
    if (units.size() < n || units.empty()) return 0.0;
    std::set<std::vector<std::string>> unique;
    const size_t total = units.size() - n + 1;
    for (size_t i = 0; i < total; ++i)
      unique.insert(std::vector<std::string>(units.begin() + i, units.begin() + i + n));
    return (1.0 - static_cast<double>(unique.size()) / static_cast<double>(total)) * max_penalty;
  });
}

// DAPO soft overlong punishment (TRL get_soft_overlong_punishment): 0 up to
// max_completion_len - soft_punish_cache, then linear down to -1 at max_completion_len, -1
// beyond. max_completion_len defaults to the trainer's max_completion_length.
RewardFn make_soft_overlong(const nlohmann::json& s) {
  const double max_len_setting = setting_double(s, "max_completion_len");
  const double cache = setting_double(s, "soft_punish_cache");
  return per_sample([=](const RewardInput& in) -> std::optional<double> {
    const double lmax = max_len_setting > 0 ? max_len_setting
                                            : static_cast<double>(in.max_completion_length);
    if (lmax <= 0) return std::nullopt;  // no limit known: not applicable
    const double len = completion_length(in);
    if (len <= lmax - cache) return 0.0;
    if (len <= lmax) return (lmax - cache - len) / cache;
    return -1.0;
  });
}

}  // namespace refract::rewards
