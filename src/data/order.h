// Which sample training draws k-th: a fresh shuffle per epoch, a function of (seed, epoch)
// only, so the order is the same on resume, for any number of processes, on every platform.
#pragma once
#include <cstdint>
#include <vector>

namespace refract::data {

class DataOrder {
 public:
  DataOrder(int64_t num_samples, uint64_t seed) : n_(num_samples), seed_(seed) {}
  // Index of the k-th sample drawn overall (k = epoch * num_samples + position).
  int64_t at(int64_t k);
  int64_t size() const { return n_; }

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;  // the current epoch's permutation
};

}  // namespace refract::data
