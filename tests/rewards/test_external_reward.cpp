// external:<command> rewards: the shipped example end to end, persistence, and every failure
// mode (timeout, crash, non-JSON, wrong length) as a clear refract::Error.
#include <gtest/gtest.h>

#include <chrono>

#include "common/check.h"
#include "rewards/external_reward.h"
#include "rewards/registry.h"

using namespace refract::rewards;
using nlohmann::json;

namespace {
std::vector<RewardInput> batch(std::vector<std::string> completions) {
  std::vector<RewardInput> out;
  for (auto& c : completions) {
    RewardInput in;
    in.completion = c;
    in.solution = "s";
    in.images.push_back({640, 480, 0, 0, "img.png"});
    out.push_back(in);
  }
  return out;
}

std::string error_of(const RewardFn& fn, const std::vector<RewardInput>& b) {
  try {
    fn(b);
  } catch (const refract::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ExternalReward, LengthRewardExampleEndToEnd) {
  const std::string cmd =
      std::string("external:python3 ") + REFRACT_SOURCE_DIR + "/examples/rewards/length_reward.py";
  auto fn = make_reward(cmd);
  // len 0 -> null; 50 chars -> 1 - 50/200; 300 chars -> 0 (clamped).
  auto r = fn(batch({"", std::string(50, 'x'), std::string(300, 'y')}));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].has_value());
  EXPECT_DOUBLE_EQ(*r[1], 0.75);
  EXPECT_DOUBLE_EQ(*r[2], 0.0);
  // The same process serves the next batch.
  auto r2 = fn(batch({std::string(100, 'z')}));
  EXPECT_DOUBLE_EQ(*r2[0], 0.5);
}

TEST(ExternalReward, ProcessIsPersistent) {
  // Replies with how many requests this process has seen.
  auto fn = make_reward(
      "external:python3 -c 'import sys,json\nn=0\nfor l in sys.stdin:\n n+=1\n "
      "print(json.dumps({\"rewards\":[n]*len(json.loads(l)[\"completions\"])}),flush=True)'");
  EXPECT_DOUBLE_EQ(*fn(batch({"a"}))[0], 1.0);
  EXPECT_DOUBLE_EQ(*fn(batch({"a", "b"}))[1], 2.0);
}

TEST(ExternalReward, RequestCarriesEveryField) {
  auto b = batch({"c"});
  b[0].prompt = "p";
  b[0].completion_ids = {1, 2};
  b[0].reward_method = "iou";
  b[0].extra = {{"k", 1}};
  const json j = external_request(b);
  EXPECT_EQ(j["prompts"][0], "p");
  EXPECT_EQ(j["completion_ids"][0], json::array({1, 2}));
  EXPECT_EQ(j["solutions"][0], "s");
  EXPECT_EQ(j["reward_methods"][0], "iou");
  EXPECT_EQ(j["extra"][0]["k"], 1);
  EXPECT_EQ(j["images"][0][0]["width"], 640);
  EXPECT_EQ(j["images"][0][0]["path"], "img.png");
}

TEST(ExternalReward, TimeoutIsAnError) {
  auto fn = make_reward("external:sleep 5", {{"timeout_seconds", 0.3}});
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of(fn, batch({"a"}));
  EXPECT_NE(e.find("no reply within"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST(ExternalReward, CrashIsAnError) {
  auto fn = make_reward("external:read line; exit 3");
  const std::string e = error_of(fn, batch({"a"}));
  EXPECT_NE(e.find("exited with status 3"), std::string::npos) << e;
}

TEST(ExternalReward, NonJsonAndWrongLengthAreErrors) {
  auto text = make_reward("external:while read l; do echo hello; done");
  EXPECT_NE(error_of(text, batch({"a"})).find("not JSON"), std::string::npos);
  auto short_reply = make_reward("external:while read l; do echo '{\"rewards\": [1]}'; done");
  EXPECT_NE(error_of(short_reply, batch({"a", "b"})).find("1 rewards for 2 completions"),
            std::string::npos);
  auto bad = make_reward("external:while read l; do echo '{\"rewards\": [\"x\"]}'; done");
  EXPECT_NE(error_of(bad, batch({"a"})).find("not a number"), std::string::npos);
}

TEST(ExternalReward, InvalidUtf8CompletionIsSent) {
  auto fn = make_reward(
      "external:python3 -c 'import sys,json\nfor l in sys.stdin:\n "
      "print(json.dumps({\"rewards\":[len(c) for c in json.loads(l)[\"completions\"]]}),flush=True)'");
  auto r = fn(batch({"ab\xff"}));
  EXPECT_DOUBLE_EQ(*r[0], 3.0);  // the bad byte became U+FFFD
}
