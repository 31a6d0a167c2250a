// Each sampling step on four-token distributions, against hand-computed results, plus a
// frequency test of the draw with a fixed seed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "generate/sampling.h"

namespace refract::generate {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

torch::Tensor row(std::vector<float> v) {
  return torch::tensor(v, torch::kFloat).unsqueeze(0);
}
torch::Tensor log_probs(std::vector<float> p) { return row(p).log(); }

void expect_row(const torch::Tensor& t, std::vector<float> want, float tol = 1e-6f) {
  ASSERT_EQ(t.size(-1), static_cast<int64_t>(want.size()));
  auto got = t.reshape({-1}).contiguous();
  for (size_t i = 0; i < want.size(); ++i) {
    float g = got[i].item<float>();
    if (std::isinf(want[i])) {
      EXPECT_TRUE(std::isinf(g) && g < 0) << "index " << i << " = " << g;
    } else {
      EXPECT_NEAR(g, want[i], tol) << "index " << i;
    }
  }
}

TEST(RepetitionPenalty, DividesPositiveMultipliesNegativeOncePerId) {
  // HF: ids present in the sequence, positive logits / p, negative * p; id 2 appears twice
  // but is penalised once; id 3 absent.
  auto logits = row({2.0f, -1.0f, 0.5f, 4.0f});
  auto ids = torch::tensor({0, 1, 2, 2}, torch::kLong).unsqueeze(0);
  expect_row(apply_repetition_penalty(logits, ids, 2.0), {1.0f, -2.0f, 0.25f, 4.0f});
}

TEST(RepetitionPenalty, RowsUseTheirOwnHistory) {
  auto logits = torch::tensor({1.0f, 1.0f, 1.0f, 1.0f, -1.0f, -1.0f, -1.0f, -1.0f}).view({2, 4});
  auto ids = torch::tensor({3, 3, 0, 1}, torch::kLong).view({2, 2});
  auto out = apply_repetition_penalty(logits, ids, 1.5);
  expect_row(out[0], {1.0f, 1.0f, 1.0f, 1.0f / 1.5f});
  expect_row(out[1], {-1.5f, -1.5f, -1.0f, -1.0f});
}

TEST(Temperature, Divides) {
  expect_row(apply_temperature(row({1.0f, -2.0f, 0.0f, 3.0f}), 0.5), {2.0f, -4.0f, 0.0f, 6.0f});
}

TEST(TopK, KeepsKLargestAndTiesAtTheBoundary) {
  expect_row(apply_top_k(row({1.0f, 4.0f, 3.0f, 2.0f}), 2), {-kInf, 4.0f, 3.0f, -kInf});
  // k-th value 3 is tied: HF keeps both (mask is `< kth`).
  expect_row(apply_top_k(row({3.0f, 4.0f, 3.0f, 2.0f}), 2), {3.0f, 4.0f, 3.0f, -kInf});
  // k >= vocab and k = 0 are no-ops.
  expect_row(apply_top_k(row({1.0f, 2.0f, 3.0f, 4.0f}), 9), {1.0f, 2.0f, 3.0f, 4.0f});
  expect_row(apply_top_k(row({1.0f, 2.0f, 3.0f, 4.0f}), 0), {1.0f, 2.0f, 3.0f, 4.0f});
}

TEST(TopP, KeepsSmallestSetReachingP) {
  // p = [0.1, 0.2, 0.3, 0.4]. Ascending cumsum: 0.1, 0.3, 0.6, 1.0.
  auto l = log_probs({0.1f, 0.2f, 0.3f, 0.4f});
  // top_p 0.65: drop cum <= 0.35 -> tokens 0 (0.1) and 1 (0.3); keep {0.4, 0.3} = 0.7 >= 0.65.
  auto out = apply_top_p(l, 0.65);
  expect_row(out, {-kInf, -kInf, std::log(0.3f), std::log(0.4f)});
  // top_p 0.75: drop cum <= 0.25 -> token 0 only.
  out = apply_top_p(l, 0.75);
  expect_row(out, {-kInf, std::log(0.2f), std::log(0.3f), std::log(0.4f)});
  // Tiny top_p keeps only the most likely token.
  out = apply_top_p(l, 0.01);
  expect_row(out, {-kInf, -kInf, -kInf, std::log(0.4f)});
}

TEST(MinP, DropsBelowFractionOfTop) {
  // threshold = 0.6 * 0.4 = 0.24: drops 0.1 and 0.2.
  auto out = apply_min_p(log_probs({0.1f, 0.2f, 0.3f, 0.4f}), 0.6);
  expect_row(out, {-kInf, -kInf, std::log(0.3f), std::log(0.4f)});
  // threshold = 0.4 * 0.4 = 0.16: keeps 0.2.
  out = apply_min_p(log_probs({0.1f, 0.2f, 0.3f, 0.4f}), 0.4);
  expect_row(out, {-kInf, std::log(0.2f), std::log(0.3f), std::log(0.4f)});
}

TEST(SampleNext, GreedyPicksArgmaxAfterPenaltyAndReturnsFullLogProb) {
  // Without the penalty token 0 (logit 2.0) wins; with penalty 2 on id 0 it becomes 1.0 and
  // token 1 (1.5) wins. The log-prob is under the raw distribution (TRL convention).
  auto logits = row({2.0f, 1.5f, 0.0f, -1.0f});
  auto hist = torch::tensor({0}, torch::kLong).view({1, 1});
  SamplingConfig c;
  c.do_sample = false;
  c.repetition_penalty = 2.0;
  std::vector<at::Generator> gens;
  auto out = sample_next(logits, hist, c, gens);
  EXPECT_EQ(out.ids.item<int64_t>(), 1);
  double z = std::exp(2.0) + std::exp(1.5) + std::exp(0.0) + std::exp(-1.0);
  EXPECT_NEAR(out.logprobs.item<float>(), 1.5 - std::log(z), 1e-5);
}

TEST(SampleNext, LogProbIsTemperatureScaledAndUntruncated) {
  // top_k 1 forces token 3, but its log-prob is log_softmax(logits / T) over all 4 tokens.
  auto logits = row({0.0f, 1.0f, 2.0f, 3.0f});
  SamplingConfig c;
  c.temperature = 2.0;
  c.top_k = 1;
  std::vector<at::Generator> gens{make_generator(7, 0)};
  auto out = sample_next(logits, torch::zeros({1, 0}, torch::kLong), c, gens);
  EXPECT_EQ(out.ids.item<int64_t>(), 3);
  double z = std::exp(0.0) + std::exp(0.5) + std::exp(1.0) + std::exp(1.5);
  EXPECT_NEAR(out.logprobs.item<float>(), 1.5 - std::log(z), 1e-5);
}

TEST(Draw, FrequenciesMatchProbabilities) {
  // 40000 rows, each with its own stream of seed 1234; chi-square with 3 dof against
  // p = [0.1, 0.2, 0.3, 0.4] must stay below 16.27 (p = 0.001).
  const int64_t n = 40000;
  std::vector<float> p = {0.1f, 0.2f, 0.3f, 0.4f};
  auto logits = log_probs(p).expand({n, 4}).contiguous();
  std::vector<at::Generator> gens;
  for (int64_t i = 0; i < n; ++i) gens.push_back(make_generator(1234, i));
  auto ids = draw_from_logits(logits, gens);
  auto counts = torch::bincount(ids, {}, 4);
  double chi2 = 0;
  for (int k = 0; k < 4; ++k) {
    double e = n * p[k];
    double o = counts[k].item<int64_t>();
    chi2 += (o - e) * (o - e) / e;
  }
  EXPECT_LT(chi2, 16.27) << counts;
}

TEST(Draw, OneGeneratorRepeatedlyAlsoMatches) {
  // The same generator drawn from 20000 times (the decode loop's usage pattern).
  std::vector<float> p = {0.5f, 0.25f, 0.125f, 0.125f};
  auto logits = log_probs(p);
  std::vector<at::Generator> gens{make_generator(99, 3)};
  std::vector<int64_t> counts(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[draw_from_logits(logits, gens).item<int64_t>()]++;
  double chi2 = 0;
  for (int k = 0; k < 4; ++k) chi2 += std::pow(counts[k] - n * p[k], 2) / (n * p[k]);
  EXPECT_LT(chi2, 16.27);
}

TEST(Draw, NeverPicksMaskedTokens) {
  auto logits = row({-kInf, 0.0f, -kInf, 0.0f}).expand({2000, 4}).contiguous();
  std::vector<at::Generator> gens;
  for (int i = 0; i < 2000; ++i) gens.push_back(make_generator(5, i));
  auto ids = draw_from_logits(logits, gens);
  EXPECT_EQ(((ids == 1) | (ids == 3)).all().item<bool>(), true);
  // Both survivors are drawn about equally.
  EXPECT_NEAR((ids == 1).sum().item<int64_t>(), 1000, 150);
}

TEST(Draw, FixedSeedReproducesAndSeedsDiffer) {
  auto logits = torch::zeros({64, 1000});
  auto draw = [&](uint64_t seed) {
    std::vector<at::Generator> gens;
    for (int i = 0; i < 64; ++i) gens.push_back(make_generator(seed, i));
    return draw_from_logits(logits, gens);
  };
  EXPECT_TRUE(torch::equal(draw(42), draw(42)));
  EXPECT_FALSE(torch::equal(draw(42), draw(43)));
}

TEST(Validate, RejectsBadValues) {
  SamplingConfig c;
  c.temperature = 0.0;
  EXPECT_THROW(validate(c), refract::Error);
  c.do_sample = false;  // greedy ignores temperature, as HF does
  EXPECT_NO_THROW(validate(c));
  c = SamplingConfig{};
  c.top_p = 1.5;
  EXPECT_THROW(validate(c), refract::Error);
}

}  // namespace
}  // namespace refract::generate

namespace refract::generate {
namespace {
TEST(SampleNext, UntruncatedSamplingLogProbIsTemperatureScaled) {
  // No truncation: the draw's own log-prob path; must equal log_softmax(logits / T).
  auto logits = torch::tensor({0.5f, -1.0f, 2.0f, 1.0f}).unsqueeze(0).expand({16, 4}).contiguous();
  SamplingConfig c;
  c.temperature = 0.7;
  std::vector<at::Generator> gens;
  for (int i = 0; i < 16; ++i) gens.push_back(make_generator(3, i));
  auto out = sample_next(logits, torch::Tensor(), c, gens);
  auto ref = (logits / 0.7).log_softmax(-1);
  for (int i = 0; i < 16; ++i) {
    int64_t id = out.ids[i].item<int64_t>();
    EXPECT_NEAR(out.logprobs[i].item<float>(), ref[i][id].item<float>(), 1e-6);
  }
}
}  // namespace
}  // namespace refract::generate

namespace refract::generate {
namespace {
TEST(TopP, LargeVocabularyKeepsTheNucleus) {
  // 20000 tokens: peaked rows take the candidate fast path, the flat row the full sort. The
  // kept set must be the smallest prefix of the descending order whose mass reaches top_p,
  // computed here independently in double precision.
  torch::manual_seed(0);
  auto logits = torch::randn({3, 20000}, torch::kDouble);
  logits[0] *= 6.0;
  logits[1] *= 4.0;  // row 2 stays flat: the nucleus spans thousands of tokens
  const double top_p = 0.9;
  // Each row alone (fast path for the peaked ones), and the batch (one flat row sends the
  // whole batch through the full sort).
  std::vector<torch::Tensor> alone;
  for (int r = 0; r < 3; ++r) alone.push_back(apply_top_p(logits[r].unsqueeze(0).to(torch::kFloat), top_p));
  auto batch = apply_top_p(logits.to(torch::kFloat), top_p);
  for (int r = 0; r < 6; ++r) {
    auto row = r < 3 ? alone[r][0] : batch[r - 3];
    auto probs = logits[r % 3].softmax(-1);
    auto sorted = probs.sort(-1, /*descending=*/true);
    auto p = std::get<0>(sorted);
    auto idx = std::get<1>(sorted);
    auto above = p.cumsum(-1) - p;
    int64_t n_keep = (above < top_p).sum().item<int64_t>();
    auto kept = torch::isfinite(row);
    if (r == 0) EXPECT_LT(n_keep, 1000);  // row 0 alone exercises the candidate fast path
    if (r == 2) EXPECT_GT(n_keep, 4096);  // row 2 needs the full sort
    EXPECT_EQ(kept.sum().item<int64_t>(), n_keep) << "row " << r;
    EXPECT_TRUE(kept.index_select(0, idx.narrow(0, 0, n_keep)).all().item<bool>()) << "row " << r;
  }
}
}  // namespace
}  // namespace refract::generate
