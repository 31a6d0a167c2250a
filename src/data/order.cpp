#include "data/order.h"

#include <utility>

#include "common/check.h"
#include "data/rng.h"

namespace refract::data {

int64_t DataOrder::at(int64_t k) {
  REFRACT_CHECK(n_ > 0) << "no training samples";
  REFRACT_CHECK(k >= 0) << "sample position " << k << " is negative";
  const int64_t epoch = k / n_;
  if (epoch != epoch_) {
    // Fisher-Yates driven by splitmix64 (data/rng.h): std::shuffle differs between libraries.
    perm_.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    Rng rng(derive_seed(seed_, static_cast<uint64_t>(epoch)));
    for (int64_t i = n_ - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.below(i + 1)]);
    epoch_ = epoch;
  }
  return perm_[k % n_];
}

}  // namespace refract::data
