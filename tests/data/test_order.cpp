// data::DataOrder: each epoch is a permutation, a function of (seed, epoch) alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/check.h"
#include "data/order.h"

namespace refract::data {
namespace {

std::vector<int64_t> epoch(DataOrder& o, int64_t e) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < o.size(); ++i) v.push_back(o.at(e * o.size() + i));
  return v;
}

TEST(DataOrder, EveryEpochIsAPermutationAndEpochsDiffer) {
  DataOrder o(50, 42);
  const auto e0 = epoch(o, 0), e1 = epoch(o, 1);
  std::vector<int64_t> sorted = e0, identity(50);
  std::sort(sorted.begin(), sorted.end());
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, identity);  // shuffled (50! makes the identity practically impossible)
}

// Resume and any number of processes rely on this: position k gives the same sample however
// the order was queried before.
TEST(DataOrder, RandomAccessEqualsSequentialAndDependsOnlyOnTheSeed) {
  DataOrder seq(17, 7), jumpy(17, 7), other(17, 8);
  std::vector<int64_t> a;
  for (int64_t k = 0; k < 17 * 4; ++k) a.push_back(seq.at(k));
  for (int64_t k = 17 * 4 - 1; k >= 0; --k) EXPECT_EQ(jumpy.at(k), a[static_cast<size_t>(k)]) << k;
  std::vector<int64_t> b;
  for (int64_t k = 0; k < 17; ++k) b.push_back(other.at(k));
  EXPECT_NE(std::vector<int64_t>(a.begin(), a.begin() + 17), b);
}

TEST(DataOrder, NoSamplesIsAnError) {
  DataOrder o(0, 1);
  EXPECT_THROW(o.at(0), Error);
}

}  // namespace
}  // namespace refract::data
