// model::linear: the decode kernel path (no grad, <= gemv_fast_rows() rows) gives what
// torch::nn::functional::linear gives, for 1..20 rows (passes of 8), 3-D inputs, non-contiguous
// inputs, with and without bias; with autograd on it is functional::linear itself.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/layers.h"

namespace refract::model {
namespace {

TEST(LinearFast, EqualsFunctionalLinear) {
  torch::manual_seed(0);
  ASSERT_EQ(gemv_fast_rows(), 8);
  auto w = torch::randn({300, 96});
  auto b = torch::randn({300});
  torch::NoGradGuard ng;
  for (int64_t rows : {1, 3, 8}) {
    for (const bool with_bias : {false, true}) {
      auto x = torch::randn({rows, 1, 96});
      auto ref = with_bias ? torch::nn::functional::linear(x, w, b) : torch::nn::functional::linear(x, w);
      auto got = model::linear(x, w, with_bias ? b : torch::Tensor());
      EXPECT_EQ(got.sizes(), ref.sizes());
      EXPECT_LT((got - ref).abs().max().item<double>(), 1e-4) << rows;
    }
  }
  // More rows than the kernel takes: BLAS (and the same result); with the threshold raised, passes
  // of 8 rows.
  auto x20 = torch::randn({20, 96});
  auto ref20 = torch::nn::functional::linear(x20, w, b);
  EXPECT_LT((model::linear(x20, w, b) - ref20).abs().max().item<double>(), 1e-4);
  set_gemv_fast_rows(32);
  EXPECT_LT((model::linear(x20, w, b) - ref20).abs().max().item<double>(), 1e-4);
  set_gemv_fast_rows(8);
  // A non-contiguous input (a transposed view).
  auto xt = torch::randn({96, 2}).t();
  EXPECT_LT((model::linear(xt, w, b) - torch::nn::functional::linear(xt, w, b)).abs().max().item<double>(), 1e-4);
}

TEST(LinearFast, AutogradTakesTheBlasPath) {
  auto w = torch::randn({40, 32}, torch::requires_grad());
  auto x = torch::randn({1, 32});
  auto y = model::linear(x, w);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_LT((w.grad() - x.expand({40, 32})).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace refract::model
