// A tiny deterministic RNG for data: shuffling, sampling strategies and the shapes world.
// std:: distributions are implementation-defined (libstdc++ and libc++ differ), so every
// draw here is plain integer arithmetic on splitmix64: the same seed gives the same stream
// on every platform and standard library.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace refract::data {

// splitmix64 finaliser: a good 64-bit mixer, used to derive independent seeds.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A seed for stream `b` of seed `a` (e.g. sample index i of seed s); order matters.
inline uint64_t derive_seed(uint64_t a, uint64_t b) {
  return mix64(mix64(a + 0x9E3779B97F4A7C15ull) ^ (b * 0xD1342543DE82EF95ull + 0x2545F4914F6CDD1Dull));
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  // Uniform in [0, n); n > 0. Multiply-shift (bias below n / 2^64, irrelevant here).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }
  // Uniform integer in [lo, hi] (inclusive).
  int64_t uniform_int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  bool bernoulli(double p) { return uniform() < p; }

  // Fisher-Yates, last to first.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

  uint64_t state() const { return state_; }

 private:
  uint64_t state_;
};

}  // namespace refract::data
