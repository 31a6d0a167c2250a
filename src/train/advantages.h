// Group-relative advantages (GRPO): rewards of the G completions of one prompt are compared
// with each other. Plain vectors, no torch, so the arithmetic is easy to check by hand.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace refract::train {

struct AdvantageResult {
  std::vector<double> rewards;     // [N] weighted total per completion (0 when all null)
  std::vector<bool> scored;        // [N] false when every reward function returned null
  std::vector<double> advantages;  // [N]
  std::vector<double> group_std;   // [N/G] std used per group (batch std when scale=batch)
  // Metrics in TRL's names.
  double reward_mean = 0;          // `reward`
  double reward_std = 0;           // `reward_std`: mean over groups of the std used
  double frac_reward_zero_std = 0; // groups whose rewards all agree (they teach nothing)
};

// per_func[i][k] = reward k of completion i (nullopt = not applicable, TRL's None).
// Completions are laid out group by group: [p0 g0..gG-1, p1 g0.., ...].
// r_i = sum_k w_k r_ik over non-null k; A_i = (r_i - mean_group) / (std + 1e-4) with the
// unbiased (Bessel) std; scale_rewards: group | batch (std over the batch, mean per group) |
// none (Dr. GRPO: no division). Unscored completions get A = 0 and stay out of the group
// statistics, so a failing reward does not drag the baseline of the others.
AdvantageResult compute_advantages(const std::vector<std::vector<std::optional<double>>>& per_func,
                                   const std::vector<double>& weights, int64_t num_generations,
                                   const std::string& scale_rewards);

// Unbiased std of `v` (0 when fewer than 2 values).
double unbiased_std(const std::vector<double>& v);

}  // namespace refract::train
