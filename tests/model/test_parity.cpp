// Parity with HF transformers 4.50 (fixtures A and C, tiny checkpoint): vision windows,
// positions, vision embeddings, logits and 8 greedy KV-cache decode steps.
#include "model_test_util.h"

#include "model/vision_windows.h"

using namespace refract::model;
namespace io = refract::io;
using namespace refract::model::test_util;

namespace {

constexpr double kTol = 1e-4;

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<GridTHW> grid_of(const torch::Tensor& g) {
  auto v = to_vec(g);
  std::vector<GridTHW> out;
  for (size_t i = 0; i + 2 < v.size(); i += 3) out.push_back({v[i], v[i + 1], v[i + 2]});
  return out;
}

class Parity : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    torch::NoGradGuard g;
    model_ = new Qwen2_5_VL(tiny_model());
    (*model_)->eval();
  }
  static void TearDownTestSuite() { delete model_; }
  static Qwen2_5_VL* model_;
};
Qwen2_5_VL* Parity::model_ = nullptr;

TEST_P(Parity, VisionWindowIndexAndCuSeqlens) {
  auto e = expected(GetParam());
  auto w = get_window_index(grid_of(e["image_grid_thw"]), (*model_)->config().vision_config);
  EXPECT_EQ(w.window_index, to_vec(e["vision_window_index"]));
  EXPECT_EQ(w.cu_window_seqlens, to_vec(e["vision_cu_window_seqlens"]));
  EXPECT_EQ(w.cu_seqlens, to_vec(e["vision_cu_seqlens"]));
}

TEST_P(Parity, RopeIndex) {
  auto e = expected(GetParam());
  auto r = (*model_)->get_rope_index(e["input_ids"], e["image_grid_thw"], e["attention_mask"]);
  EXPECT_TRUE(torch::equal(r.position_ids, e["position_ids"]));
  EXPECT_TRUE(torch::equal(r.rope_deltas, e["rope_deltas"]));
}

TEST_P(Parity, PatchEmbedAndImageEmbeds) {
  torch::NoGradGuard g;
  auto e = expected(GetParam());
  auto pe = (*model_)->visual->patch_embed->forward(e["pixel_values"]);
  EXPECT_LT(max_abs_diff(pe, e["vision_patch_embeds"]), kTol);
  auto emb = (*model_)->encode_images(e["pixel_values"], e["image_grid_thw"]);
  ASSERT_EQ(emb.sizes(), e["image_embeds"].sizes());
  EXPECT_LT(max_abs_diff(emb, e["image_embeds"]), kTol);
}

TEST_P(Parity, ForwardLogitsAndHiddenStates) {
  torch::NoGradGuard g;
  auto e = expected(GetParam());
  auto out = (*model_)->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]);
  ASSERT_EQ(out.logits.sizes(), e["logits"].sizes());
  EXPECT_LT(max_abs_diff(out.logits, e["logits"]), kTol);
  EXPECT_LT(max_abs_diff(out.hidden_states, e["last_hidden_state"]), kTol);
  EXPECT_TRUE(torch::equal(out.position_ids, e["position_ids"]));
  EXPECT_TRUE(torch::equal(out.rope_deltas, e["rope_deltas"]));
  // Given position_ids (and precomputed image embeddings) give the same result and deltas.
  ModelInputs in;
  in.input_ids = e["input_ids"];
  in.attention_mask = e["attention_mask"];
  in.image_embeds = e["image_embeds"];
  in.position_ids = e["position_ids"];
  auto given = (*model_)->forward(in);
  EXPECT_LT(max_abs_diff(given.logits, e["logits"]), kTol);
  EXPECT_TRUE(torch::equal(given.rope_deltas, e["rope_deltas"]));
  // logits_to_keep: the last K rows of the full logits.
  auto last = (*model_)->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"], nullptr, 3);
  ASSERT_EQ(last.logits.size(1), 3);
  EXPECT_LT(max_abs_diff(last.logits, e["logits"].narrow(1, e["logits"].size(1) - 3, 3)), kTol);
}

TEST_P(Parity, GreedyDecodeWithKVCache) {
  torch::NoGradGuard g;
  auto e = expected(GetParam());
  auto ids = e["input_ids"];
  auto mask = e["attention_mask"];
  const int64_t steps = e["generated_ids"].size(1);
  KVCache cache = (*model_)->make_cache(1, ids.size(1) + steps);
  auto out = (*model_)->forward(ids, mask, e["pixel_values"], e["image_grid_thw"], &cache, 1);
  auto logits = out.logits.select(1, 0);  // [1, V]
  std::vector<int64_t> gen;
  for (int64_t k = 0; k < steps; ++k) {
    EXPECT_LT(max_abs_diff(logits, e["generated_step_logits"].select(1, k)), kTol) << "step " << k;
    auto next = logits.argmax(-1, /*keepdim=*/true);  // [1, 1]
    gen.push_back(next.item<int64_t>());
    if (k + 1 == steps) break;
    mask = torch::cat({mask, torch::ones({1, 1}, mask.options())}, 1);
    logits = (*model_)->forward_decode(next, mask, out.rope_deltas, cache);
  }
  EXPECT_EQ(gen, to_vec(e["generated_ids"]));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::Values("A", "C"));

// Batch of A (left-padded to C's length) and C: every row must reproduce its own fixture at
// the non-padding positions, and greedy decoding must give both fixtures' tokens.
TEST(ParityBatch, LeftPaddedBatchMatchesSingles) {
  torch::NoGradGuard g;
  auto model = tiny_model();
  model->eval();
  auto a = expected("A"), c = expected("C");
  const int64_t la = a["input_ids"].size(1), lc = c["input_ids"].size(1);
  const int64_t pad = lc - la;
  ASSERT_GT(pad, 0);
  auto pad_ids = torch::full({1, pad}, 4000, torch::kLong);
  auto ids = torch::cat({torch::cat({pad_ids, a["input_ids"]}, 1), c["input_ids"]}, 0);
  auto mask = torch::cat({torch::cat({torch::zeros({1, pad}, torch::kLong), a["attention_mask"]}, 1), c["attention_mask"]}, 0);
  auto pix = torch::cat({a["pixel_values"], c["pixel_values"]}, 0);
  auto grid = torch::cat({a["image_grid_thw"], c["image_grid_thw"]}, 0);
  const int64_t steps = 8;
  KVCache cache = model->make_cache(2, lc + steps);
  auto out = model->forward(ids, mask, pix, grid, &cache);
  EXPECT_LT(max_abs_diff(out.logits[0].narrow(0, pad, la), a["logits"][0]), kTol);
  EXPECT_LT(max_abs_diff(out.logits[1], c["logits"][0]), kTol);
  // Padding positions hold 1; real ones equal the single-sequence positions.
  EXPECT_TRUE(torch::equal(out.position_ids.select(1, 0).narrow(1, pad, la), a["position_ids"].select(1, 0)));
  EXPECT_TRUE(torch::equal(out.position_ids.select(1, 0).narrow(1, 0, pad), torch::ones({3, pad}, torch::kLong)));
  // rope_delta is relative to the padded length: A's delta shifts by -pad.
  EXPECT_EQ(out.rope_deltas[0][0].item<int64_t>(), a["rope_deltas"][0][0].item<int64_t>() - pad);
  auto logits = out.logits.select(1, lc - 1);
  std::vector<std::vector<int64_t>> gen(2);
  for (int64_t k = 0; k < steps; ++k) {
    EXPECT_LT(max_abs_diff(logits[0], a["generated_step_logits"][0][k]), kTol) << "A step " << k;
    EXPECT_LT(max_abs_diff(logits[1], c["generated_step_logits"][0][k]), kTol) << "C step " << k;
    auto next = logits.argmax(-1, true);
    for (int r = 0; r < 2; ++r) gen[r].push_back(next[r][0].item<int64_t>());
    mask = torch::cat({mask, torch::ones({2, 1}, mask.options())}, 1);
    logits = model->forward_decode(next, mask, out.rope_deltas, cache);
  }
  EXPECT_EQ(gen[0], to_vec(a["generated_ids"]));
  EXPECT_EQ(gen[1], to_vec(c["generated_ids"]));
}

// One prefill shared by G samples (repeat_rows), and select_rows dropping / reordering rows.
TEST(ParityBatch, CacheRepeatAndSelectRows) {
  torch::NoGradGuard g;
  auto model = tiny_model();
  model->eval();
  auto a = expected("A");
  const int64_t la = a["input_ids"].size(1);
  KVCache cache = model->make_cache(1, la + 4);
  auto out = model->forward(a["input_ids"], a["attention_mask"], a["pixel_values"], a["image_grid_thw"], &cache, 1);
  cache.repeat_rows(3);
  EXPECT_EQ(cache.batch_size(), 3);
  ASSERT_TRUE(cache.rope_deltas().defined());
  auto gen = a["generated_ids"];
  // Feed three different tokens; row 1 gets the fixture's greedy token.
  auto next = torch::tensor(std::vector<int64_t>{7, gen[0][0].item<int64_t>(), 11}).view({3, 1});
  auto mask = torch::ones({3, la + 1}, torch::kLong);
  auto logits = model->forward_decode(next, mask, cache.rope_deltas(), cache);
  EXPECT_LT(max_abs_diff(logits[1], a["generated_step_logits"][0][1]), kTol);
  EXPECT_GT(max_abs_diff(logits[0], logits[1]), 1e-3);
  cache.select_rows(torch::tensor({1}, torch::kLong));
  EXPECT_EQ(cache.batch_size(), 1);
  auto next2 = torch::tensor({{gen[0][1].item<int64_t>()}}, torch::kLong);
  auto logits2 = model->forward_decode(next2, torch::ones({1, la + 2}, torch::kLong), cache.rope_deltas(), cache);
  EXPECT_LT(max_abs_diff(logits2[0], a["generated_step_logits"][0][2]), kTol);
}

TEST(ParityErrors, ImageTokenCountMismatchNamesTheIds) {
  torch::NoGradGuard g;
  auto model = tiny_model();
  auto a = expected("A");
  auto ids = a["input_ids"].clone();
  // Replace one image token with text: 5 tokens for 6 embeddings.
  auto pos = (ids[0] == 4013).nonzero()[0][0].item<int64_t>();
  ids[0][pos] = 5;
  try {
    model->forward(ids, a["attention_mask"], a["pixel_values"], a["image_grid_thw"]);
    FAIL() << "expected an error";
  } catch (const refract::Error& err) {
    std::string msg = err.what();
    EXPECT_NE(msg.find("do not match"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4013"), std::string::npos) << msg;
  }
}

TEST(ParityText, TextOnlyLeftPaddingEqualsUnpadded) {
  // Mathematical identity: left padding must not change the logits of real tokens.
  torch::NoGradGuard g;
  auto model = tiny_model();
  model->eval();
  auto ids = torch::tensor({{4001, 950, 198, 2610, 525, 264}}, torch::kLong);
  auto single = model->forward(ids, torch::Tensor(), torch::Tensor(), torch::Tensor());
  auto padded_ids = torch::cat({torch::full({1, 3}, 4000, torch::kLong), ids}, 1);
  auto mask = torch::cat({torch::zeros({1, 3}, torch::kLong), torch::ones({1, 6}, torch::kLong)}, 1);
  auto padded = model->forward(padded_ids, mask, torch::Tensor(), torch::Tensor());
  EXPECT_LT(max_abs_diff(padded.logits[0].narrow(0, 3, 6), single.logits[0]), 1e-5);
  EXPECT_EQ(padded.rope_deltas[0][0].item<int64_t>(), -3);
  EXPECT_EQ(single.rope_deltas[0][0].item<int64_t>(), 0);
}

}  // namespace
