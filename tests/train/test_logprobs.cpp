// The shared-prompt log-prob forward (one prompt pass, a differentiable KV cache copied to
// its G completions) against one full sequence per row: same log-probs, same gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/torch_tensors.h"
#include "model/qwen2_5_vl.h"
#include "test_device.h"
#include "train/logprobs.h"

namespace refract::train {
namespace {

const std::string kDir = std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl";
constexpr int64_t kPad = 4000;  // tiny generation_config.json

struct Prompt {
  std::vector<int64_t> ids;
  torch::Tensor pixel_values, image_grid_thw;
};

Prompt fixture_prompt(const std::string& name) {
  auto t = io::load_tensors(kDir + "/" + name + "/expected.safetensors");
  auto ids = t.at("input_ids")[0].contiguous();
  Prompt p;
  p.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  p.pixel_values = t.at("pixel_values");
  p.image_grid_thw = t.at("image_grid_thw");
  return p;
}

// Rows 0-2 complete prompt A, rows 3-4 prompt C; lengths differ (right padding) and row 1
// samples the image-pad token, which is fed back as padding.
struct Batches {
  PolicyBatch per_row, shared;
};

Batches make_batches(const model::Qwen2_5_VLImpl& model) {
  const Prompt a = fixture_prompt("A"), c = fixture_prompt("C");
  const std::vector<std::vector<int64_t>> completions = {
      {950, 198, 2610, 525, 4002}, {1110, model.config().image_token_id, 77}, {12},
      {3000, 17, 17, 17, 17, 4002}, {5, 6}};
  const std::vector<int> prompt_of_row = {0, 0, 0, 1, 1};
  const int64_t b = 5, t = 6;
  torch::Tensor ids = torch::full({b, t}, kPad, torch::kInt64);
  torch::Tensor mask = torch::zeros({b, t}, torch::kFloat32);
  for (int64_t i = 0; i < b; ++i) {
    const auto& ci = completions[i];
    ids[i].narrow(0, 0, ci.size()).copy_(torch::tensor(ci, torch::kInt64));
    mask[i].narrow(0, 0, ci.size()).fill_(1);
  }
  const Prompt* prompts[2] = {&a, &c};
  Batches out;
  for (PolicyBatch* pb : {&out.per_row, &out.shared}) {
    pb->completion_ids = ids;
    pb->completion_mask = mask;
    pb->pad_id = kPad;
  }
  std::vector<torch::Tensor> pv, grid;
  for (int64_t i = 0; i < b; ++i) {
    const Prompt& p = *prompts[prompt_of_row[i]];
    out.per_row.prompt_ids.push_back(p.ids);
    pv.push_back(p.pixel_values);
    grid.push_back(p.image_grid_thw);
    out.shared.row_prompt.push_back(prompt_of_row[i]);
  }
  out.per_row.pixel_values = torch::cat(pv);
  out.per_row.image_grid_thw = torch::cat(grid);
  out.shared.prompt_ids = {a.ids, c.ids};
  out.shared.pixel_values = torch::cat({a.pixel_values, c.pixel_values});
  out.shared.image_grid_thw = torch::cat({a.image_grid_thw, c.image_grid_thw});
  return out;
}

double max_abs_diff(const torch::Tensor& x, const torch::Tensor& y) {
  return (x.cpu().to(torch::kFloat64) - y.cpu().to(torch::kFloat64)).abs().max().item<double>();
}

// Every parameter's gradient, zeros where none reached it.
std::vector<torch::Tensor> parameter_grads(model::Qwen2_5_VLImpl& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

TEST(CompletionLogps, SharedPromptForwardEqualsOneSequencePerRow) {
  torch::set_num_threads(2);
  auto model = model::load_pretrained(kDir + "/tiny", refract::testing::test_device(), "float32");
  model->train();
  const Batches bt = make_batches(*model);
  const torch::Tensor mask = bt.per_row.completion_mask;
  // An arbitrary weighting of tokens, so the gradient depends on every position.
  const torch::Tensor weights = torch::linspace(-1.0, 2.0, mask.numel()).view(mask.sizes()) * mask;

  auto run = [&](const PolicyBatch& pb, torch::Tensor* logps, torch::Tensor* entropies) {
    model->zero_grad();
    PolicyLogps lp = completion_logps(*model, pb, /*temperature=*/0.7, /*with_entropy=*/true);
    (lp.logps * weights).sum().backward();
    *logps = lp.logps.detach();
    *entropies = lp.entropies;
    return parameter_grads(*model);
  };
  torch::Tensor lp_row, lp_shared, ent_row, ent_shared;
  const auto g_row = run(bt.per_row, &lp_row, &ent_row);
  const auto g_shared = run(bt.shared, &lp_shared, &ent_shared);

  ASSERT_EQ(lp_row.sizes(), lp_shared.sizes());
  EXPECT_LT(max_abs_diff(lp_row * mask, lp_shared * mask), 1e-4);
  EXPECT_LT(max_abs_diff(ent_row * mask, ent_shared * mask), 1e-4);
  EXPECT_LT(lp_row.select(0, 0).narrow(0, 0, 5).max().item<double>(), 0.0);  // real log-probs
  ASSERT_EQ(g_row.size(), g_shared.size());
  double scale = 0, worst = 0;
  for (size_t i = 0; i < g_row.size(); ++i) {
    scale = std::max(scale, g_row[i].abs().max().item<double>());
    worst = std::max(worst, max_abs_diff(g_row[i], g_shared[i]));
  }
  EXPECT_GT(scale, 1e-3);  // the loss reaches the parameters
  EXPECT_LT(worst, 1e-4 * std::max(1.0, scale));
}

// GRPO's policy forward with gradient checkpointing (which the trainer runs one sequence per
// row): the same log-probs and the same gradients (<= 1e-6) as storing every activation.
TEST(CompletionLogps, GradientCheckpointingGivesTheSameGradients) {
  torch::set_num_threads(2);
  auto model = model::load_pretrained(kDir + "/tiny", refract::testing::test_device(), "float32");
  model->train();
  const Batches bt = make_batches(*model);
  const torch::Tensor mask = bt.per_row.completion_mask;
  const torch::Tensor weights = torch::linspace(-1.0, 2.0, mask.numel()).view(mask.sizes()) * mask;
  auto run = [&](bool ckpt, torch::Tensor* logps) {
    model->set_gradient_checkpointing(ckpt);
    model->zero_grad();
    PolicyLogps lp = completion_logps(*model, bt.per_row, 0.7, false);
    (lp.logps * weights).sum().backward();
    *logps = lp.logps.detach();
    return parameter_grads(*model);
  };
  torch::Tensor lp_plain, lp_ckpt;
  const auto g_plain = run(false, &lp_plain);
  const auto g_ckpt = run(true, &lp_ckpt);
  EXPECT_LE(max_abs_diff(lp_plain, lp_ckpt), 1e-6);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g_plain.size(); ++i) {
    scale = std::max(scale, g_plain[i].abs().max().item<double>());
    worst = std::max(worst, max_abs_diff(g_plain[i], g_ckpt[i]));
  }
  EXPECT_GT(scale, 1e-3);
  EXPECT_LE(worst, 1e-6);
}

TEST(CompletionLogps, RejectsRowPromptOutOfRange) {
  auto model = model::load_pretrained(kDir + "/tiny", refract::testing::test_device(), "float32");
  Batches bt = make_batches(*model);
  bt.shared.row_prompt[4] = 2;
  EXPECT_THROW(completion_logps(*model, bt.shared, 1.0, false), std::exception);
}

}  // namespace
}  // namespace refract::train
