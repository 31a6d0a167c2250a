// The decode kernel (model/gemv.h) against a double-precision reference: every row count 1..8,
// row slices, k not a multiple of the vector width, with and without bias, strided x / y.
#include "model/gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace refract::model {
namespace {

TEST(Gemv, MatchesDoubleReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t k : {16, 48, 37, 768}) {
    const int64_t n = 29;  // not a multiple of the 4 / 2 output rows a block takes
    std::vector<float> w(n * k), bias(n);
    for (auto& v : w) v = nd(rng);
    for (auto& v : bias) v = nd(rng);
    for (int64_t m = 1; m <= kGemvMaxRows; ++m) {
      const int64_t ldx = k + 3, ldy = n + 5;  // padded rows: strides are honoured
      std::vector<float> x(m * ldx);
      for (auto& v : x) v = nd(rng);
      for (const bool with_bias : {false, true}) {
        std::vector<float> y(m * ldy, -7.0f);
        // Two slices, as two threads would compute them.
        gemv_rows(x.data(), ldx, m, w.data(), k, with_bias ? bias.data() : nullptr, y.data(), ldy, 0, 11);
        gemv_rows(x.data(), ldx, m, w.data(), k, with_bias ? bias.data() : nullptr, y.data(), ldy, 11, n);
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t o = 0; o < n; ++o) {
            double ref = with_bias ? bias[o] : 0.0;
            double mag = std::fabs(ref);
            for (int64_t j = 0; j < k; ++j) {
              ref += static_cast<double>(x[r * ldx + j]) * w[o * k + j];
              mag += std::fabs(static_cast<double>(x[r * ldx + j]) * w[o * k + j]);
            }
            // float32 accumulation: error bounded by ~k * eps * sum |terms|
            EXPECT_NEAR(y[r * ldy + o], ref, 1e-6 * mag * std::sqrt(static_cast<double>(k)) + 1e-6)
                << "k " << k << " m " << m << " row " << r << " out " << o;
          }
          for (int64_t o = n; o < ldy; ++o) EXPECT_EQ(y[r * ldy + o], -7.0f) << "padding written";
        }
      }
    }
  }
}

}  // namespace
}  // namespace refract::model
