// Median wall time of a benchmark body: one warm-up call, then `reps` timed calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace refract::bench {

inline double median_ms(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace refract::bench
