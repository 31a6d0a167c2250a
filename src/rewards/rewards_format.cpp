// Format rewards: does the completion have the expected shape?
#include <memory>

#include "rewards/builtin.h"
#include "rewards/regex.h"
#include "rewards/reward_util.h"

namespace refract::rewards {

// 1 if the WHOLE completion is <think>..</think> <answer>..</answer> (re.fullmatch, DOTALL).
// ref: VLM-R1 grpo_jsonl.py format_reward; Visual-RFT; ms-swift "format".
RewardFn make_format(const nlohmann::json& s) {
  const std::string pattern = setting_string(s, "format_pattern");
  auto re = std::make_shared<Regex>(pattern);
  return per_sample([re](const RewardInput& in) -> std::optional<double> {
    return re->full_match(in.completion) ? 1.0 : 0.0;
  });
}

// 1 if the completion CONTAINS think + answer with a {..[int, int, int, int]..} inside the
// answer (re.search, DOTALL: text outside the tags is tolerated).
// ref: VLM-R1 grpo_rec.py format_reward_rec
RewardFn make_rec_format(const nlohmann::json& s) {
  const std::string pattern = setting_string(s, "format_pattern");
  auto re = std::make_shared<Regex>(pattern);
  return per_sample([re](const RewardInput& in) -> std::optional<double> {
    return re->search(in.completion) ? 1.0 : 0.0;
  });
}

}  // namespace refract::rewards
