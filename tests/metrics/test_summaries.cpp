// Metrics on hand-computed cases: box overlaps, edit distances, task summaries.
#include <gtest/gtest.h>

#include <cmath>

#include "metrics/box.h"
#include "metrics/summaries.h"
#include "metrics/text_distance.h"

using namespace refract::metrics;

TEST(Box, IouHandComputed) {
  // [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7.
  EXPECT_DOUBLE_EQ(iou({0, 0, 2, 2}, {1, 1, 3, 3}), 1.0 / 7);
  EXPECT_DOUBLE_EQ(iou({0, 0, 2, 2}, {5, 5, 6, 6}), 0.0);
  EXPECT_DOUBLE_EQ(iou({0, 0, 0, 0}, {0, 0, 0, 0}), 0.0);  // empty union
}

TEST(Box, GiouHandComputed) {
  // Disjoint [0,0,1,1], [2,0,3,1]: IoU 0, enclosing area 3, union 2 -> 0 - 1/3.
  EXPECT_DOUBLE_EQ(giou({0, 0, 1, 1}, {2, 0, 3, 1}), -1.0 / 3);
  EXPECT_DOUBLE_EQ(giou({0, 0, 2, 2}, {0, 0, 2, 2}), 1.0);
}

TEST(Box, VlmR1IouUsesInclusivePixelIntersection) {
  // Same box [0,0,10,10]: intersection (9-0+1)^2 = 100, union 100+100-100 = 100 -> 1.
  EXPECT_DOUBLE_EQ(iou_vlm_r1({0, 0, 10, 10}, {0, 0, 10, 10}), 1.0);
  // [0,0,10,10] vs [5,0,15,10]: ix2 = min(9, 14) = 9, inter = (9-5+1)*(9-0+1) = 50,
  // union = 100 + 100 - 50 = 150 (continuous IoU would be 50/150 too).
  EXPECT_DOUBLE_EQ(iou_vlm_r1({0, 0, 10, 10}, {5, 0, 15, 10}), 50.0 / 150);
  // Touching within one pixel: [0,0,10,10] vs [9,0,19,10]: ix1 = 9, ix2 = 9, not strict -> 0,
  // whereas continuous IoU is 10 / 190.
  EXPECT_DOUBLE_EQ(iou_vlm_r1({0, 0, 10, 10}, {9, 0, 19, 10}), 0.0);
  EXPECT_DOUBLE_EQ(iou({0, 0, 10, 10}, {9, 0, 19, 10}), 10.0 / 190);
}

TEST(TextDistance, LevenshteinClassic) {
  EXPECT_EQ(levenshtein("kitten", "sitting"), 3);
  EXPECT_EQ(levenshtein("", "abc"), 3);
  EXPECT_EQ(levenshtein("flaw", "lawn"), 2);
  // Code points, not bytes: one substitution of a 3-byte character.
  EXPECT_EQ(levenshtein("a\xe4\xb8\xad" "b", "a\xe6\x96\x87" "b"), 1);
}

TEST(TextDistance, RatiosHandComputed) {
  // 1 - 3 / 7
  EXPECT_DOUBLE_EQ(edit_similarity("kitten", "sitting"), 1.0 - 3.0 / 7);
  EXPECT_DOUBLE_EQ(char_error_rate("kitten", "sitting"), 3.0 / 7);
  // python-Levenshtein ratio("kitten", "sitting"): LCS "ittn" = 4, indel = 13 - 8 = 5,
  // 1 - 5/13 = 8/13.
  EXPECT_DOUBLE_EQ(indel_ratio("kitten", "sitting"), 8.0 / 13);
  EXPECT_DOUBLE_EQ(indel_ratio("", ""), 1.0);
  // tokens {a,b,c} vs {b,c,d}: P = R = 2/3 -> F1 2/3
  EXPECT_DOUBLE_EQ(token_set_f1("a b c", "b c d"), 2.0 / 3);
}

TEST(TextDistance, InvalidUtf8IsAccepted) {
  const auto cps = utf8_codepoints("a\xff" "b");
  ASSERT_EQ(cps.size(), 3u);
  EXPECT_EQ(cps[1], 0xDC00u + 0xff);
}

TEST(Summaries, RecHandComputed) {
  std::vector<RecSample> s = {{0.5, true}, {0.95, true}, {0.0, false}, {0.3, false}};
  const auto j = rec_summary(s);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.25);    // only 0.95 > 0.5
  EXPECT_DOUBLE_EQ(j["acc@0.5"].get<double>(), 0.5);      // 0.5 and 0.95 >= 0.5
  EXPECT_DOUBLE_EQ(j["acc@0.3"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["acc@0.95"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["mean_iou"].get<double>(), (0.5 + 0.95 + 0.3) / 4);
  EXPECT_DOUBLE_EQ(j["center_accuracy"].get<double>(), 0.5);
}

TEST(Summaries, CountOcrCls) {
  const auto c = count_summary({3, 5, 2}, {3, 4, 4});
  EXPECT_DOUBLE_EQ(c["accuracy"].get<double>(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(c["mae"].get<double>(), 1.0);
  const auto o = ocr_summary({{"kitten", "sitting"}, {"abc", "abc"}});
  EXPECT_DOUBLE_EQ(o["cer"].get<double>(), 3.0 / 10);  // (3 + 0) / (7 + 3)
  EXPECT_DOUBLE_EQ(o["exact_match"].get<double>(), 0.5);
  // Text accuracy = mean (1 - edits / longer length): kitten/sitting 1 - 3/7, abc 1.
  EXPECT_DOUBLE_EQ(o["edit_similarity"].get<double>(), ((1.0 - 3.0 / 7) + 1.0) / 2);
  // Token-set F1: single tokens that differ -> 0; equal -> 1.
  EXPECT_DOUBLE_EQ(o["token_f1"].get<double>(), 0.5);
  // {the, cat, sat} vs {the, cat, ran, off}: 2 common, P = 2/3, R = 2/4 -> F1 = 4/7; the
  // repeated "the" counts once (a set).
  const auto t = ocr_summary({{"the cat sat the", "the cat ran off"}});
  EXPECT_DOUBLE_EQ(t["token_f1"].get<double>(), 2 * (2.0 / 3) * (2.0 / 4) / (2.0 / 3 + 2.0 / 4));
  const auto k = cls_summary({"cat", "dog", "dog"}, {"cat", "cat", "dog"});
  EXPECT_DOUBLE_EQ(k["accuracy"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(k["per_class"]["cat"]["accuracy"].get<double>(), 0.5);
}
