// The GRPO loss and its gradient on a 2-sequence example, against a scalar hand computation
// (plain doubles, written from the formulas in grpo.md, not from the tensor code).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "train/grpo_loss.h"

using namespace refract::train;

namespace {

constexpr int B = 2, T = 3;
const double kLogp[B][T] = {{-1.0, -0.5, -2.0}, {-0.3, -1.2, -0.7}};
// Token (0,0): ratio exp(0.3) > 1.28 with A > 0 -> high clip. Token (1,0): ratio exp(-0.3)
// < 0.8 with A < 0 -> low clip. The padding token (0,2) has a wild ratio that must not count.
const double kOld[B][T] = {{-1.3, -0.2, -5.0}, {0.0, -1.6, -0.5}};
const double kRef[B][T] = {{-0.9, -0.6, -1.5}, {-0.4, -1.0, -0.7}};
const double kMask[B][T] = {{1, 1, 0}, {1, 1, 1}};
const double kAdv[B] = {1.5, -0.8};
const double kEpsLow = 0.2, kEpsHigh = 0.28, kBeta = 0.04;
const int kGA = 2, kMaxLen = 4;
const double kNumItems = 10;  // dapo: active tokens of a larger generation batch

struct Hand {
  double loss = 0;
  double grad[B][T] = {};
  double clip_low = 0, clip_high = 0;
};

// One clipped surrogate term -min(w A, clip(w) A) and its derivative with respect to w.
void surrogate(double w, double a, double* l, double* dl_dw) {
  const double wc = std::min(std::max(w, 1 - kEpsLow), 1 + kEpsHigh);
  if (w * a <= wc * a) {
    *l = -w * a;
    *dl_dw = -a;
  } else {
    *l = -wc * a;
    *dl_dw = 0;  // the clipped branch is constant in w
  }
}

Hand hand(const std::string& loss_type, bool sequence, double beta) {
  Hand h;
  double len[B] = {0, 0}, active = 0;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) len[b] += kMask[b][t], active += kMask[b][t];
  // c[b][t] = d loss / d per_token_loss[b][t] (the normalisation).
  double c[B][T];
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      double n = 0;
      if (loss_type == "grpo") n = 1.0 / (len[b] * B * kGA);
      if (loss_type == "bnpo") n = 1.0 / (active * kGA);
      if (loss_type == "dr_grpo") n = 1.0 / (double(B) * kMaxLen * kGA);
      if (loss_type == "dapo") n = 1.0 / kNumItems;
      c[b][t] = n * kMask[b][t];
    }
  for (int b = 0; b < B; ++b) {
    double mean_lr = 0;
    for (int t = 0; t < T; ++t) mean_lr += kMask[b][t] * (kLogp[b][t] - kOld[b][t]);
    mean_lr /= len[b];
    for (int t = 0; t < T; ++t) {
      const double w = std::exp(sequence ? mean_lr : kLogp[b][t] - kOld[b][t]);
      double l, dl_dw;
      surrogate(w, kAdv[b], &l, &dl_dw);
      h.loss += c[b][t] * l;
      if (sequence) {
        // w depends on every active token of the row: dw/dlogp_s = w m_s / len.
        for (int s = 0; s < T; ++s) h.grad[b][s] += c[b][t] * dl_dw * w * kMask[b][s] / len[b];
      } else {
        h.grad[b][t] += c[b][t] * dl_dw * w;
      }
      const double d = kRef[b][t] - kLogp[b][t];
      h.loss += c[b][t] * beta * (std::exp(d) - d - 1);
      h.grad[b][t] += c[b][t] * beta * (1 - std::exp(d));
      if (kMask[b][t] > 0) {
        h.clip_low += (w < 1 - kEpsLow && kAdv[b] < 0) / active;
        h.clip_high += (w > 1 + kEpsHigh && kAdv[b] > 0) / active;
      }
    }
  }
  return h;
}

torch::Tensor t2(const double (&v)[B][T]) {
  return torch::tensor({v[0][0], v[0][1], v[0][2], v[1][0], v[1][1], v[1][2]}, torch::kFloat64)
      .view({B, T});
}

void check(const std::string& loss_type, bool sequence, double beta) {
  SCOPED_TRACE(loss_type + (sequence ? " sequence" : " token") + " beta=" + std::to_string(beta));
  torch::Tensor logp = t2(kLogp).requires_grad_(true);
  GrpoLossInputs in;
  in.per_token_logps = logp;
  in.old_per_token_logps = t2(kOld);
  in.ref_per_token_logps = t2(kRef);
  in.advantages = torch::tensor({kAdv[0], kAdv[1]}, torch::kFloat64);
  in.completion_mask = t2(kMask);
  GrpoLossOptions o;
  o.loss_type = loss_type;
  o.importance_sampling_level = sequence ? "sequence" : "token";
  o.epsilon_low = kEpsLow;
  o.epsilon_high = kEpsHigh;
  o.beta = beta;
  o.gradient_accumulation_steps = kGA;
  o.max_completion_length = kMaxLen;
  o.num_items_in_batch = kNumItems;
  GrpoLossOutput out = grpo_loss(in, o);
  out.loss.backward();
  Hand h = hand(loss_type, sequence, beta);
  EXPECT_NEAR(out.loss.item<double>(), h.loss, 1e-12);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      EXPECT_NEAR(logp.grad()[b][t].item<double>(), h.grad[b][t], 1e-12) << b << "," << t;
  EXPECT_NEAR(out.clip_ratio_low, h.clip_low, 1e-12);
  EXPECT_NEAR(out.clip_ratio_high, h.clip_high, 1e-12);
  EXPECT_NEAR(out.clip_ratio_region, h.clip_low + h.clip_high, 1e-12);
}

}  // namespace

TEST(GrpoLoss, EveryLossTypeTokenLevel) {
  for (const char* lt : {"grpo", "bnpo", "dr_grpo", "dapo"}) {
    check(lt, false, 0.0);
    check(lt, false, kBeta);
  }
}

TEST(GrpoLoss, EveryLossTypeSequenceLevel) {
  for (const char* lt : {"grpo", "bnpo", "dr_grpo", "dapo"}) check(lt, true, kBeta);
}

TEST(GrpoLoss, TokenLevelClipsWhereExpected) {
  Hand h = hand("grpo", false, 0.0);
  EXPECT_NEAR(h.clip_low, 1.0 / 5, 1e-12);   // token (1,0)
  EXPECT_NEAR(h.clip_high, 1.0 / 5, 1e-12);  // token (0,0)
  check("grpo", false, 0.0);
}

TEST(GrpoLoss, OnPolicyRatioIsOneAndNeverClips) {
  // mu = 1: no old log-probs -> ratio 1, clip ratios 0, loss = -mean A, gradient = -A/len/B.
  torch::Tensor logp = t2(kLogp).requires_grad_(true);
  GrpoLossInputs in;
  in.per_token_logps = logp;
  in.advantages = torch::tensor({kAdv[0], kAdv[1]}, torch::kFloat64);
  in.completion_mask = t2(kMask);
  GrpoLossOptions o;
  o.loss_type = "grpo";
  o.epsilon_low = 0.0;  // even a zero-width clip range never fires at ratio 1
  o.epsilon_high = 0.0;
  GrpoLossOutput out = grpo_loss(in, o);
  out.loss.backward();
  EXPECT_EQ(out.clip_ratio_low, 0.0);
  EXPECT_EQ(out.clip_ratio_high, 0.0);
  EXPECT_EQ(out.clip_ratio_region, 0.0);
  EXPECT_NEAR(out.loss.item<double>(), -(kAdv[0] + kAdv[1]) / 2, 1e-12);
  // The gradient with TRL's default range: with a zero-width range both arms of the min are
  // equal at ratio 1, and which arm the gradient takes is the libtorch version's choice
  // (1.13: one arm; 2.x: half to each, and the clamp's arm carries none).
  logp.mutable_grad() = torch::Tensor();
  o.epsilon_low = 0.2;
  o.epsilon_high = 0.2;
  grpo_loss(in, o).loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), -kAdv[0] / 2 / 2, 1e-12);
  EXPECT_NEAR(logp.grad()[1][2].item<double>(), -kAdv[1] / 3 / 2, 1e-12);
  EXPECT_EQ(logp.grad()[0][2].item<double>(), 0.0);
}

TEST(GrpoLoss, SelectiveLogSoftmaxAndEntropy) {
  // Logits [0, 2 ln 2, 2 ln 3] at temperature 2 -> probabilities 1/6, 2/6, 3/6.
  torch::Tensor logits =
      torch::tensor({0.0, 2 * std::log(2.0), 2 * std::log(3.0)}, torch::kFloat64).view({1, 1, 3});
  torch::Tensor ids = torch::tensor({2}, torch::kLong).view({1, 1});
  EXPECT_NEAR(selective_log_softmax(logits, ids, 2.0).item<double>(), std::log(0.5), 1e-12);
  const double h = -(1.0 / 6 * std::log(1.0 / 6) + 2.0 / 6 * std::log(2.0 / 6) + 0.5 * std::log(0.5));
  EXPECT_NEAR(entropy_from_logits(logits, 2.0).item<double>(), h, 1e-12);
}

TEST(GrpoLoss, HighEntropyMask) {
  torch::Tensor e = torch::tensor({1.0, 2.0, 3.0, 4.0, 100.0}, torch::kFloat64).view({1, 5});
  torch::Tensor m = torch::tensor({1.0, 1.0, 1.0, 1.0, 0.0}, torch::kFloat64).view({1, 5});
  // quantile 0.5 of {1,2,3,4} = 2.5 -> keep 3 and 4; the padded 100 stays out.
  torch::Tensor k = high_entropy_mask(e, m, 0.5);
  EXPECT_TRUE(torch::equal(k, torch::tensor({0.0, 0.0, 1.0, 1.0, 0.0}, torch::kFloat64).view({1, 5})));
  EXPECT_TRUE(torch::equal(high_entropy_mask(e, m, 0.0), m));
}
