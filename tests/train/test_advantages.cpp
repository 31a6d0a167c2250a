// Group advantages against hand computations.
#include <gtest/gtest.h>

#include <cmath>

#include "train/advantages.h"

using refract::train::compute_advantages;
using Rows = std::vector<std::vector<std::optional<double>>>;

TEST(Advantages, GroupScalingMatchesHand) {
  // One group of 4, one reward: mean 2.5, unbiased std sqrt(5/3).
  Rows r = {{1.0}, {2.0}, {3.0}, {4.0}};
  auto out = compute_advantages(r, {}, 4, "group");
  const double s = std::sqrt(5.0 / 3.0);
  EXPECT_NEAR(out.advantages[0], -1.5 / (s + 1e-4), 1e-12);
  EXPECT_NEAR(out.advantages[3], 1.5 / (s + 1e-4), 1e-12);
  EXPECT_NEAR(out.reward_mean, 2.5, 1e-12);
  EXPECT_NEAR(out.reward_std, s, 1e-12);
  EXPECT_EQ(out.frac_reward_zero_std, 0.0);
}

TEST(Advantages, ConstantRewardGroupGivesZero) {
  Rows r = {{0.7}, {0.7}, {0.7}, {1.0}, {0.0}, {0.5}};
  auto out = compute_advantages(r, {}, 3, "group");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.advantages[i], 0.0);
  EXPECT_NE(out.advantages[3], 0.0);
  EXPECT_NEAR(out.frac_reward_zero_std, 0.5, 1e-12);
}

TEST(Advantages, WeightsAndNulls) {
  // Two reward functions with weights 2 and 0.5; the second is null for one completion and
  // both are null for another (which is left out of the group statistics, advantage 0).
  Rows r = {{1.0, 1.0}, {0.0, std::nullopt}, {std::nullopt, std::nullopt}, {0.5, 0.0}};
  auto out = compute_advantages(r, {2.0, 0.5}, 4, "group");
  EXPECT_NEAR(out.rewards[0], 2.5, 1e-12);
  EXPECT_NEAR(out.rewards[1], 0.0, 1e-12);
  EXPECT_FALSE(out.scored[2]);
  EXPECT_NEAR(out.rewards[3], 1.0, 1e-12);
  // scored rewards {2.5, 0, 1}: mean 7/6, unbiased variance = sum sq dev / 2.
  const double m = 3.5 / 3.0;
  const double var = ((2.5 - m) * (2.5 - m) + m * m + (1 - m) * (1 - m)) / 2.0;
  EXPECT_NEAR(out.advantages[0], (2.5 - m) / (std::sqrt(var) + 1e-4), 1e-12);
  EXPECT_EQ(out.advantages[2], 0.0);
  EXPECT_NEAR(out.advantages[3], (1 - m) / (std::sqrt(var) + 1e-4), 1e-12);
}

TEST(Advantages, AllNullGivesZero) {
  Rows r = {{std::nullopt}, {std::nullopt}};
  auto out = compute_advantages(r, {}, 2, "group");
  EXPECT_EQ(out.advantages[0], 0.0);
  EXPECT_EQ(out.advantages[1], 0.0);
}

TEST(Advantages, BatchAndNoneScaling) {
  // Groups {0, 1} and {2, 4}: batch std of {0,1,2,4} = sqrt(35/12); means per group.
  Rows r = {{0.0}, {1.0}, {2.0}, {4.0}};
  auto batch = compute_advantages(r, {}, 2, "batch");
  const double bs = std::sqrt((1.75 * 1.75 + 0.75 * 0.75 + 0.25 * 0.25 + 2.25 * 2.25) / 3.0);
  EXPECT_NEAR(batch.advantages[0], -0.5 / (bs + 1e-4), 1e-12);
  EXPECT_NEAR(batch.advantages[3], 1.0 / (bs + 1e-4), 1e-12);
  auto none = compute_advantages(r, {}, 2, "none");
  EXPECT_NEAR(none.advantages[0], -0.5, 1e-12);
  EXPECT_NEAR(none.advantages[2], -1.0, 1e-12);
}

TEST(Advantages, RejectsBadShapes) {
  Rows r = {{1.0}, {2.0}, {3.0}};
  EXPECT_THROW(compute_advantages(r, {}, 2, "group"), std::exception);
  EXPECT_THROW(compute_advantages({{1.0}, {2.0}}, {}, 2, "median"), std::exception);
}
