// The training loader: permutations per epoch, determinism by seed, exact resume, disjoint
// shards, and preprocessed images.
#include <gtest/gtest.h>

#include <set>

#include "common/check.h"
#include "data/loader.h"

using namespace refract;
using namespace refract::data;

namespace {

std::vector<Sample> make_samples(int64_t n, bool with_images) {
  std::vector<Sample> out;
  for (int64_t i = 0; i < n; ++i) {
    Sample s;
    s.id = std::to_string(i);
    s.source = "mem:" + std::to_string(i + 1);
    if (with_images) {
      s.images.push_back({std::string(REFRACT_FIXTURES_DIR) + "/data/images/" + (i % 2 ? "a.png" : "b.png"), 0, 0});
      s.prompt = {{"user", {text::ContentItem::make_image(0), text::ContentItem::make_text("q")}}};
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> ids(DataLoader& l, int64_t batches) {
  std::vector<std::string> out;
  for (int64_t b = 0; b < batches; ++b)
    for (const auto& it : l.next().items) out.push_back(it.sample.id);
  return out;
}

}  // namespace

TEST(Loader, EachEpochIsAPermutationAndSeedsDecideTheOrder) {
  LoaderConfig c;
  c.batch_size = 4;
  c.num_workers = 2;
  c.seed = 3;
  DataLoader a(make_samples(20, false), c), b(make_samples(20, false), c);
  const auto ea = ids(a, 10), eb = ids(b, 10);  // two epochs of 5 batches
  EXPECT_EQ(ea, eb);
  std::set<std::string> first(ea.begin(), ea.begin() + 20), second(ea.begin() + 20, ea.end());
  EXPECT_EQ(first.size(), 20u);
  EXPECT_EQ(second.size(), 20u);
  EXPECT_NE(std::vector<std::string>(ea.begin(), ea.begin() + 20), std::vector<std::string>(ea.begin() + 20, ea.end()))
      << "epochs must be reshuffled";
  c.seed = 4;
  DataLoader d(make_samples(20, false), c);
  EXPECT_NE(ids(d, 5), std::vector<std::string>(ea.begin(), ea.begin() + 20));
  c.shuffle = false;
  DataLoader e(make_samples(20, false), c);
  const auto ee = ids(e, 1);
  EXPECT_EQ(ee, (std::vector<std::string>{"0", "1", "2", "3"}));
}

TEST(Loader, ResumeGivesTheSameBatchesAsAnUninterruptedRun) {
  LoaderConfig c;
  c.batch_size = 3;
  c.num_workers = 2;
  c.seed = 11;
  const int64_t n = 7, m = 9;  // crosses epoch boundaries (10 samples: 4 batches per epoch)
  DataLoader full(make_samples(10, false), c);
  std::vector<Batch> want;
  for (int64_t i = 0; i < n + m; ++i) want.push_back(full.next());

  DataLoader first(make_samples(10, false), c);
  for (int64_t i = 0; i < n; ++i) first.next();
  const nlohmann::json saved = nlohmann::json::parse(first.state().to_json().dump());
  DataLoader resumed(make_samples(10, false), c);
  resumed.next();  // consumed and in-flight batches must not matter
  resumed.load_state(LoaderState::from_json(saved));
  for (int64_t i = 0; i < m; ++i) {
    Batch b = resumed.next();
    const Batch& w = want[static_cast<size_t>(n + i)];
    EXPECT_EQ(b.epoch, w.epoch);
    EXPECT_EQ(b.index, w.index);
    ASSERT_EQ(b.items.size(), w.items.size());
    for (size_t k = 0; k < b.items.size(); ++k) EXPECT_EQ(b.items[k].sample.id, w.items[k].sample.id);
  }
  // The last batch of an epoch is partial (10 = 3 + 3 + 3 + 1) unless drop_last.
  EXPECT_EQ(want[3].items.size(), 1u);
  EXPECT_EQ(want[4].epoch, 1);
  EXPECT_EQ(want[4].index, 0);
  EXPECT_THROW(LoaderState::from_json({{"epoch", 1}}), Error);
}

TEST(Loader, ShardsAreDisjointAndCoverTheData) {
  for (int64_t n : {12, 10}) {
    std::vector<std::vector<int64_t>> shards;
    for (int64_t r = 0; r < 3; ++r) {
      LoaderConfig c;
      c.rank = r;
      c.world_size = 3;
      c.seed = 5;
      c.num_workers = 0;
      DataLoader l(make_samples(n, false), c);
      shards.push_back(l.epoch_order(2));
      EXPECT_EQ(l.samples_per_epoch(), (n + 2) / 3);
    }
    std::multiset<int64_t> all;
    for (const auto& s : shards) all.insert(s.begin(), s.end());
    std::set<int64_t> distinct(all.begin(), all.end());
    EXPECT_EQ(distinct.size(), static_cast<size_t>(n));  // every sample somewhere
    // DistributedSampler pads by wrapping: exactly 3 * ceil(n / 3) - n repeats.
    EXPECT_EQ(all.size() - distinct.size(), static_cast<size_t>(3 * ((n + 2) / 3) - n));
    if (n % 3 == 0)
      for (size_t a = 0; a < 3; ++a)
        for (size_t b = a + 1; b < 3; ++b)
          for (int64_t x : shards[a]) EXPECT_EQ(std::count(shards[b].begin(), shards[b].end(), x), 0);
  }
}

TEST(Loader, WorkersDecodeAndPreprocessImages) {
  LoaderConfig c;
  c.batch_size = 2;
  c.shuffle = false;
  c.num_workers = 2;
  DataLoader l(make_samples(4, true), c);
  Batch b = l.next();
  ASSERT_EQ(b.items.size(), 2u);
  // b.png 100x80 -> smart_resize 112x84 -> grid (1, 6, 8) -> 12 tokens; a.png 64x48 -> 56x56
  // (round(48/28) = 2, round(64/28) = 2) -> grid (1, 4, 4) -> 4 tokens.
  const LoadedSample& s0 = b.items[0];
  EXPECT_EQ(s0.sample.images[0].width, 100);
  EXPECT_EQ(s0.images[0].grid_thw, (std::array<int64_t, 3>{1, 6, 8}));
  EXPECT_EQ(s0.sample.prompt[0].content[0].image_tokens, 12);
  EXPECT_EQ(b.items[1].images[0].grid_thw, (std::array<int64_t, 3>{1, 4, 4}));
  EXPECT_EQ(b.items[1].sample.prompt[0].content[0].image_tokens, 4);
  // A missing image fails with the sample's source.
  auto bad = make_samples(1, true);
  bad[0].images[0].path = "/nonexistent.png";
  DataLoader lb(std::move(bad), c);
  try {
    lb.next();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mem:1"), std::string::npos) << e.what();
  }
}
