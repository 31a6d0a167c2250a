#include "train/advantages.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace refract::train {

double unbiased_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

AdvantageResult compute_advantages(const std::vector<std::vector<std::optional<double>>>& per_func,
                                   const std::vector<double>& weights, int64_t num_generations,
                                   const std::string& scale_rewards) {
  const int64_t n = static_cast<int64_t>(per_func.size());
  const int64_t g = num_generations;
  REFRACT_CHECK(g >= 1 && n % g == 0)
      << "compute_advantages: " << n << " completions is not a multiple of num_generations " << g;
  REFRACT_CHECK(scale_rewards == "group" || scale_rewards == "batch" || scale_rewards == "none")
      << "scale_rewards: '" << scale_rewards << "' is not one of group, batch, none";
  AdvantageResult out;
  out.rewards.assign(n, 0.0);
  out.scored.assign(n, false);
  out.advantages.assign(n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const auto& row = per_func[i];
    REFRACT_CHECK(weights.empty() || weights.size() == row.size())
        << "reward_weights has " << weights.size() << " entries, rewards " << row.size();
    for (size_t k = 0; k < row.size(); ++k) {
      if (!row[k]) continue;  // ref: trl nansum: None rewards are skipped
      out.rewards[i] += (weights.empty() ? 1.0 : weights[k]) * *row[k];
      out.scored[i] = true;
    }
  }
  std::vector<double> all_scored;
  for (int64_t i = 0; i < n; ++i)
    if (out.scored[i]) all_scored.push_back(out.rewards[i]);
  const double batch_std = unbiased_std(all_scored);
  const int64_t groups = n / g;
  int64_t zero_std_groups = 0;
  double std_sum = 0;
  for (int64_t p = 0; p < groups; ++p) {
    std::vector<double> vals;
    for (int64_t j = p * g; j < (p + 1) * g; ++j)
      if (out.scored[j]) vals.push_back(out.rewards[j]);
    double mean = 0;
    for (double x : vals) mean += x;
    if (!vals.empty()) mean /= static_cast<double>(vals.size());
    // A constant group teaches nothing: its advantages are exactly 0 (a summed mean such as
    // (0.7 + 0.7 + 0.7) / 3 is not exactly 0.7 and would leave 1e-12 / 1e-4 noise).
    const bool constant = !vals.empty() &&
        std::all_of(vals.begin(), vals.end(), [&](double x) { return x == vals[0]; });
    if (constant) mean = vals[0];
    const double gstd = constant ? 0.0 : unbiased_std(vals);
    // ref: trl: is_std_zero = isclose(std_grouped, 0)
    if (std::abs(gstd) <= 1e-8) ++zero_std_groups;
    const double used_std = scale_rewards == "batch" ? batch_std : gstd;
    out.group_std.push_back(used_std);
    std_sum += used_std;
    for (int64_t j = p * g; j < (p + 1) * g; ++j) {
      if (!out.scored[j]) continue;
      double a = out.rewards[j] - mean;
      if (scale_rewards != "none") a /= used_std + 1e-4;  // ref: trl `std + 1e-4`
      out.advantages[j] = a;
    }
  }
  double sum = 0;
  for (double r : out.rewards) sum += r;
  out.reward_mean = n ? sum / static_cast<double>(n) : 0.0;
  out.reward_std = groups ? std_sum / static_cast<double>(groups) : 0.0;
  out.frac_reward_zero_std = groups ? static_cast<double>(zero_std_groups) / groups : 0.0;
  return out;
}

}  // namespace refract::train
