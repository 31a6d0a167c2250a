// The pieces of data-parallel training that need no second process: environment parsing,
// the launcher's line prefixing, the ZeRO-1 partition, and a world of one.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <numeric>

#include "common/check.h"
#include "distributed/dist.h"
#include "distributed/dist_env.h"
#include "distributed/launcher.h"
#include "distributed/zero.h"
#include "train/config.h"

using namespace refract;
using namespace refract::distributed;

namespace {
// Sets (or with nullptr unsets) the rendezvous variables for one test.
struct EnvGuard {
  EnvGuard(const char* rank, const char* world, const char* addr, const char* port) {
    set("RANK", rank), set("WORLD_SIZE", world), set("MASTER_ADDR", addr), set("MASTER_PORT", port);
    ::unsetenv("LOCAL_RANK");
  }
  ~EnvGuard() {
    for (const char* k : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}) ::unsetenv(k);
  }
  static void set(const char* k, const char* v) {
    if (v) ::setenv(k, v, 1);
    else ::unsetenv(k);
  }
};
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(DistEnv, SingleProcessWithoutWorldSize) {
  EnvGuard g(nullptr, nullptr, nullptr, nullptr);
  const DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.world_size, 1);
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(device_for_rank("cuda:3", e), "cuda:3");
}

TEST(DistEnv, ReadsTorchrunVariables) {
  EnvGuard g("1", "4", "10.0.0.7", "29511");
  ::setenv("LOCAL_RANK", "0", 1);
  const DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.master_addr, "10.0.0.7");
  EXPECT_EQ(e.master_port, 29511);
  EXPECT_EQ(device_for_rank("cuda", e), "cuda:0");
  EXPECT_EQ(device_for_rank("cpu", e), "cpu");
}

TEST(DistEnv, BadValuesNameTheVariable) {
  {
    EnvGuard g("2", "2", "127.0.0.1", "29500");
    EXPECT_NE(error_of([] { dist_env_from_environment(); }).find("RANK='2'"), std::string::npos);
  }
  {
    EnvGuard g("0", "2", nullptr, "29500");
    EXPECT_NE(error_of([] { dist_env_from_environment(); }).find("MASTER_ADDR"), std::string::npos);
  }
  {
    EnvGuard g(nullptr, "2", "127.0.0.1", "29500");
    EXPECT_NE(error_of([] { dist_env_from_environment(); }).find("RANK is not"), std::string::npos);
  }
  {
    EnvGuard g("0", "2", "127.0.0.1", "http");
    EXPECT_NE(error_of([] { dist_env_from_environment(); }).find("MASTER_PORT='http'"), std::string::npos);
  }
}

TEST(Launcher, PrefixesWholeLinesOnly) {
  LinePrefixer p("[rank 1] ");
  EXPECT_EQ(p.feed("ab", 2), "");
  EXPECT_EQ(p.feed("c\nde\nf", 6), "[rank 1] abc\n[rank 1] de\n");
  EXPECT_EQ(p.flush(), "[rank 1] f\n");
  EXPECT_EQ(p.flush(), "");
}

TEST(Launcher, FreePortIsBindable) {
  const int port = pick_free_port();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

// Greedy by size: the example by hand, then balance and coverage on a model-like list.
TEST(Zero, PartitionAssignsLargestFirstToTheLeastLoaded) {
  // sizes 10, 7, 6, 3, 2 over 2 ranks: 10->0, 7->1, 6->1 (7 < 10), 3->0 (10 < 13), 2->0 (13 = 13: lower rank)
  EXPECT_EQ(partition_parameters({10, 7, 6, 3, 2}, 2), (std::vector<int>{0, 1, 1, 0, 0}));
  std::vector<int64_t> sizes;
  for (int i = 0; i < 50; ++i) sizes.push_back(1000 + 37 * (i % 7) * (i % 5));
  const auto owner = partition_parameters(sizes, 3);
  std::vector<int64_t> load(3, 0);
  for (size_t i = 0; i < sizes.size(); ++i) load[static_cast<size_t>(owner[i])] += sizes[i];
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  const int64_t biggest = *std::max_element(sizes.begin(), sizes.end());
  for (int64_t l : load) EXPECT_LE(l, total / 3 + biggest);  // greedy LPT bound
}

TEST(Dist, WorldOfOneIsTheIdentity) {
  Dist d;
  EXPECT_EQ(d.world_size(), 1);
  EXPECT_TRUE(d.is_main());
  EXPECT_EQ(d.sum(std::vector<double>{1.5, -2}), (std::vector<double>{1.5, -2}));
  std::vector<int64_t> counts;
  EXPECT_EQ(d.all_gather(std::vector<int64_t>{4, 5, 6}, &counts), (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(counts, (std::vector<int64_t>{3}));
  torch::Tensor t = torch::ones({3});
  d.all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t, torch::ones({3})));
}

// TRL's rule on the global generation batch: per-device x world x steps_per_generation.
TEST(Config, NumGenerationsDividesTheGlobalBatch) {
  train::GrpoConfig c;
  c.model_name_or_path = "some/model";
  c.reward_funcs = {"format"};
  c.num_generations = 4;
  c.per_device_train_batch_size = 2;
  c.gradient_accumulation_steps = 1;
  EXPECT_NE(error_of([&] { train::validate(c, 1); }).find("divisible by num_generations"), std::string::npos);
  EXPECT_EQ(error_of([&] { train::validate(c, 2); }), "");
  EXPECT_NE(error_of([&] { train::validate(c, 3); }).find("2 x 3 x 1 = 6"), std::string::npos);
}
