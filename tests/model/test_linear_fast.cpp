// model::linear: the decode kernel path (no grad, <= gemv_fast_rows() rows) gives what
// torch::nn::functional::linear gives, for 1..20 rows (passes of 8), 3-D inputs, non-contiguous
// inputs, with and without bias; with autograd on it is functional::linear itself.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

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

// CPU nanoseconds each thread of this process has run (/proc/self/task/TID/schedstat).
std::map<int, int64_t> thread_cpu_ns() {
  std::map<int, int64_t> out;
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/schedstat");
    int64_t ns = 0;
    if (f >> ns) out[std::atoi(e->d_name)] = ns;
  }
  closedir(d);
  return out;
}

// The GEMV's at::parallel_for must run on the intra-op threads: its `#pragma omp parallel` is
// ignored when layers.cpp is compiled without -fopenmp, and then the caller did all the work
// (decode at batch 1 ran at half the speed with 2 threads). Checked by where the CPU time went.
TEST(LinearFast, SplitsTheWeightRowsOverTheThreads) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one CPU";
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  torch::NoGradGuard ng;
  auto w = torch::randn({16384, 1024});
  auto x = torch::randn({1, 1024});
  model::linear(x, w, torch::Tensor());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // OpenMP workers stop spinning
  const int self = static_cast<int>(syscall(SYS_gettid));
  const auto before = thread_cpu_ns();
  for (int i = 0; i < 30; ++i) model::linear(x, w, torch::Tensor());
  const auto after = thread_cpu_ns();
  at::set_num_threads(saved);
  int64_t caller = 0, others = 0;
  for (const auto& [tid, ns] : after) {
    const int64_t delta = ns - (before.count(tid) ? before.at(tid) : 0);
    (tid == self ? caller : others) += delta;
  }
  ASSERT_GT(caller + others, 0);
  EXPECT_GT(static_cast<double>(others) / static_cast<double>(caller + others), 0.3)
      << "caller " << caller / 1e6 << " ms, other threads " << others / 1e6 << " ms";
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
