// Gradient checkpointing (model/recompute.h) is an identity on gradients: the same loss
// gives the same parameter and input gradients with and without recomputation, for the full
// model (vision blocks + decoder layers), with LoRA dropout active (the recomputation must draw
// the same dropout masks), and when only LoRA adapters train (inputs need no gradient).
// The attention kernel (model/attention.h) matches a hand-written softmax attention.
#include "model_test_util.h"

#include "model/attention.h"
#include "model/lora.h"
#include "model/recompute.h"

using namespace refract::model;
using namespace refract::model::test_util;

namespace {

// Gradients of a fixed random projection of the logits, by parameter name.
std::map<std::string, torch::Tensor> gradients(Qwen2_5_VL& m, std::map<std::string, torch::Tensor>& e, bool ckpt,
                                               uint64_t dropout_seed) {
  m->set_gradient_checkpointing(ckpt);
  m->zero_grad();
  torch::manual_seed(dropout_seed);
  auto logits = m->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]).logits;
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(7);
  auto w = torch::randn(logits.sizes(), gen);
  (logits * w).sum().backward();
  std::map<std::string, torch::Tensor> g;
  for (auto& p : m->named_parameters())
    if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
  return g;
}

void expect_same(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  double worst = 0.0;
  for (const auto& [name, g] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const double d = max_abs_diff(g, b.at(name));
    worst = std::max(worst, d);
    EXPECT_LE(d, 1e-6) << name;
  }
  ::testing::Test::RecordProperty("max_abs_diff", std::to_string(worst));
}

}  // namespace

TEST(GradientCheckpointing, FullModelGradientsAreUnchanged) {
  auto m = tiny_model();
  m->train();
  auto e = expected("C");  // images of two sizes, left padding
  auto plain = gradients(m, e, false, 1);
  auto recomputed = gradients(m, e, true, 1);
  expect_same(plain, recomputed);
  EXPECT_TRUE(plain.count("visual.blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(plain.count("model.layers.0.self_attn.q_proj.weight"));
}

TEST(GradientCheckpointing, LoraWithDropoutRecomputesTheSameMasks) {
  auto m = tiny_model();
  LoraConfig c;
  c.lora_dropout = 0.3;
  c.lora_target_vision = true;
  apply_lora(*m, c);
  freeze_base(*m);
  {
    torch::NoGradGuard g;  // non-zero B so the adapters' path (and its dropout) matters
    for (auto& p : m->named_parameters())
      if (p.key().find(".lora_B.") != std::string::npos) p.value().normal_(0.0, 0.05);
  }
  m->train();
  auto e = expected("C");
  auto plain = gradients(m, e, false, 3);
  auto recomputed = gradients(m, e, true, 3);
  for (const auto& [name, g] : plain) EXPECT_NE(name.find(".lora_"), std::string::npos) << name;
  expect_same(plain, recomputed);
  // Different dropout masks give different gradients: the comparison above can fail.
  auto other_masks = gradients(m, e, false, 4);
  double d = 0.0;
  for (const auto& [name, g] : plain) d = std::max(d, max_abs_diff(g, other_masks.at(name)));
  EXPECT_GT(d, 1e-4);
}

TEST(GradientCheckpointing, InferenceIsUnaffected) {
  auto m = tiny_model();
  m->eval();
  auto e = expected("A");
  torch::NoGradGuard g;
  OneThread one_thread;  // torch::equal of two forwards
  auto a = m->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]).logits;
  m->set_gradient_checkpointing(true);
  auto b = m->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]).logits;
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(GradientCheckpointing, CheckpointedBlockMatchesPlainOnAHandModule) {
  // y = tanh(x W) twice in a row; gradients of x and W equal with and without recomputation.
  torch::manual_seed(0);
  torch::nn::Linear lin(torch::nn::LinearOptions(5, 5).bias(false));
  auto x0 = torch::randn({3, 5});
  auto run = [&](bool ckpt) {
    lin->zero_grad();
    auto x = x0.clone().requires_grad_(true);
    auto f = [&](const torch::Tensor& in) { return torch::tanh(lin->forward(in)); };
    auto y = ckpt ? checkpointed(*lin, f, checkpointed(*lin, f, x)) : f(f(x));
    (y * y).sum().backward();
    return std::make_pair(x.grad().clone(), lin->weight.grad().clone());
  };
  auto [gx0, gw0] = run(false);
  auto [gx1, gw1] = run(true);
  EXPECT_LE(max_abs_diff(gx0, gx1), 1e-7);
  EXPECT_LE(max_abs_diff(gw0, gw1), 1e-7);
}

TEST(Attention, MatchesSoftmaxAttentionWithGqaAndMask) {
  torch::manual_seed(0);
  const int64_t b = 2, h = 4, kv = 2, s = 3, l = 5, d = 8;
  auto q = torch::randn({b, h, s, d}), k = torch::randn({b, kv, l, d}), v = torch::randn({b, kv, l, d});
  auto mask = torch::zeros({b, 1, s, l});
  mask.index_put_({0, 0, torch::indexing::Slice(), 0}, std::numeric_limits<float>::lowest());  // row 0: key 0 padded
  auto out = attention(q, k, v, mask);
  ASSERT_EQ(out.sizes(), q.sizes());
  // By hand: head i reads kv head i / (h / kv).
  auto kr = k.repeat_interleave(h / kv, 1), vr = v.repeat_interleave(h / kv, 1);
  auto p = torch::softmax(torch::matmul(q, kr.transpose(2, 3)) / std::sqrt(static_cast<double>(d)) + mask, -1);
  EXPECT_LE(max_abs_diff(out, torch::matmul(p, vr)), 1e-5);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}
