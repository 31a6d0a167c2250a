// LR schedules, AdamW, clipping and accumulation against hand computations.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "train/optim.h"
#include "train/scheduler.h"

using namespace refract::train;

TEST(Schedule, LinearWithWarmup) {
  LrSchedule s{"linear", 1.0, 2, 10};
  EXPECT_DOUBLE_EQ(s.multiplier(0), 0.0);
  EXPECT_DOUBLE_EQ(s.multiplier(1), 0.5);
  EXPECT_DOUBLE_EQ(s.multiplier(2), 1.0);
  EXPECT_DOUBLE_EQ(s.multiplier(6), 0.5);  // (10-6)/(10-2)
  EXPECT_DOUBLE_EQ(s.multiplier(10), 0.0);
}

TEST(Schedule, CosineAndConstant) {
  LrSchedule c{"cosine", 2.0, 2, 10};
  EXPECT_NEAR(c.lr(2), 2.0, 1e-12);
  EXPECT_NEAR(c.lr(6), 1.0, 1e-12);  // halfway: 0.5 (1 + cos(pi/2))
  EXPECT_NEAR(c.lr(4), 2.0 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_NEAR(c.lr(10), 0.0, 1e-12);
  LrSchedule k{"constant", 3.0, 4, 10};
  EXPECT_DOUBLE_EQ(k.lr(1), 0.75);
  EXPECT_DOUBLE_EQ(k.lr(9), 3.0);
  EXPECT_EQ(resolve_warmup_steps(0, 0.1, 25), 3);  // ceil(2.5)
  EXPECT_EQ(resolve_warmup_steps(5, 0.1, 25), 5);
}

TEST(Schedule, WarmupStableDecay) {
  // HF get_wsd_schedule(num_warmup_steps=2, num_decay_steps=4, num_training_steps=10,
  // min_lr_ratio=0.1): warmup from 0.1, stable over steps 2-5, cosine over 6-9, then 0.1.
  LrSchedule w{"warmup_stable_decay", 2.0, 2, 10, 4, 0.1};
  EXPECT_NEAR(w.multiplier(0), 0.1, 1e-12);
  EXPECT_NEAR(w.multiplier(1), 0.55, 1e-12);  // 0.1 + 0.9 x 1/2
  EXPECT_NEAR(w.multiplier(2), 1.0, 1e-12);
  EXPECT_NEAR(w.multiplier(5), 1.0, 1e-12);
  EXPECT_NEAR(w.multiplier(6), 1.0, 1e-12);   // decay progress 0
  EXPECT_NEAR(w.multiplier(8), 0.55, 1e-12);  // progress 1/2: 0.1 + 0.9 x 0.5
  EXPECT_NEAR(w.multiplier(7), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_NEAR(w.lr(10), 0.2, 1e-12);
  EXPECT_NEAR(w.lr(50), 0.2, 1e-12);
}

TEST(Optim, AdamWOneStepMatchesHand) {
  // First AdamW step: bias-corrected m/sqrt(v) = sign(g), so p <- p (1 - lr wd) - lr g/(|g|+eps).
  torch::Tensor w = torch::full({1}, 1.0, torch::kFloat64).requires_grad_(true);
  torch::Tensor b = torch::full({1}, 1.0, torch::kFloat64).requires_grad_(true);
  OptimizerSettings s;
  s.learning_rate = 0.1;
  s.weight_decay = 0.01;
  auto opt = make_adamw({{"layer.weight", w}, {"layer.bias", b}}, s);
  opt->zero_grad();
  (0.5 * w + 0.5 * b).sum().backward();
  opt->step();
  EXPECT_NEAR(w.item<double>(), 1.0 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8), 1e-12);
  EXPECT_NEAR(b.item<double>(), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-12);  // no decay on bias
  set_learning_rate(*opt, 0.05);
  for (auto& g : opt->param_groups()) EXPECT_DOUBLE_EQ(g.options().get_lr(), 0.05);
}

TEST(Optim, ClipGradNorm) {
  torch::Tensor a = torch::zeros({2}, torch::kFloat64).requires_grad_(true);
  (a * torch::tensor({3.0, 4.0}, torch::kFloat64)).sum().backward();
  EXPECT_NEAR(clip_grad_norm({a}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(a.grad()[1].item<double>(), 0.8, 1e-6);
}

TEST(Optim, GradientAccumulationEqualsFullBatch) {
  // mean over 4 samples == two micro-batches of 2, each loss / GA, gradients summed.
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({4, 3}, torch::kFloat64);
  torch::Tensor w1 = torch::randn({3}, torch::kFloat64).requires_grad_(true);
  torch::Tensor w2 = w1.detach().clone().requires_grad_(true);
  (x.matmul(w1)).pow(2).mean().backward();
  for (int k = 0; k < 2; ++k) ((x.slice(0, 2 * k, 2 * k + 2).matmul(w2)).pow(2).mean() / 2).backward();
  EXPECT_TRUE(torch::allclose(w1.grad(), w2.grad(), 1e-12, 1e-12));
}
