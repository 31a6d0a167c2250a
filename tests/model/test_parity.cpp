// Parity with HF transformers 4.50: Qwen2.5-VL (fixtures A and C, tiny checkpoint) and Qwen2-VL
// (fixture Q2A, tiny_q2 checkpoint): vision windows (Qwen2.5-VL), positions, vision
// embeddings, logits and 8 greedy KV-cache decode steps.
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

bool is_qwen2_vl_case(const std::string& name) { return name.rfind("Q2", 0) == 0; }

class Parity : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    torch::NoGradGuard g;
    model_ = new Qwen2_5_VL(tiny_model());
    (*model_)->eval();
    model_q2_ = new Qwen2_5_VL(tiny_q2_model());
    (*model_q2_)->eval();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete model_q2_;
  }
  // The checkpoint of the parameter's family.
  static Qwen2_5_VL& model() { return is_qwen2_vl_case(GetParam()) ? *model_q2_ : *model_; }
  static std::map<std::string, torch::Tensor> expected() { return expected_case(GetParam()); }
  static Qwen2_5_VL* model_;
  static Qwen2_5_VL* model_q2_;
};
Qwen2_5_VL* Parity::model_ = nullptr;
Qwen2_5_VL* Parity::model_q2_ = nullptr;

TEST_P(Parity, VisionWindowIndexAndCuSeqlens) {
  if (is_qwen2_vl_case(GetParam())) GTEST_SKIP() << "Qwen2-VL has no vision windows";
  auto e = expected();
  auto w = get_window_index(grid_of(e["image_grid_thw"]), (*model_)->config().vision_config);
  EXPECT_EQ(w.window_index, to_vec(e["vision_window_index"]));
  EXPECT_EQ(w.cu_window_seqlens, to_vec(e["vision_cu_window_seqlens"]));
  EXPECT_EQ(w.cu_seqlens, to_vec(e["vision_cu_seqlens"]));
}

TEST_P(Parity, RopeIndex) {
  auto e = expected();
  auto r = model()->get_rope_index(e["input_ids"], e["image_grid_thw"], e["attention_mask"]);
  EXPECT_TRUE(torch::equal(r.position_ids, e["position_ids"]));
  EXPECT_TRUE(torch::equal(r.rope_deltas, e["rope_deltas"]));
}

TEST_P(Parity, PatchEmbedAndImageEmbeds) {
  torch::NoGradGuard g;
  auto e = expected();
  auto pe = model()->visual->patch_embed->forward(e["pixel_values"]);
  EXPECT_LT(max_abs_diff(pe, e["vision_patch_embeds"]), kTol);
  auto emb = model()->encode_images(e["pixel_values"], e["image_grid_thw"]);
  ASSERT_EQ(emb.sizes(), e["image_embeds"].sizes());
  EXPECT_LT(max_abs_diff(emb, e["image_embeds"]), kTol);
}

TEST_P(Parity, ForwardLogitsAndHiddenStates) {
  torch::NoGradGuard g;
  auto e = expected();
  auto out = model()->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]);
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
  auto given = model()->forward(in);
  EXPECT_LT(max_abs_diff(given.logits, e["logits"]), kTol);
  EXPECT_TRUE(torch::equal(given.rope_deltas, e["rope_deltas"]));
  // logits_to_keep: the last K rows of the full logits.
  auto last = model()->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"], nullptr, 3);
  ASSERT_EQ(last.logits.size(1), 3);
  EXPECT_LT(max_abs_diff(last.logits, e["logits"].narrow(1, e["logits"].size(1) - 3, 3)), kTol);
}

TEST_P(Parity, GreedyDecodeWithKVCache) {
  torch::NoGradGuard g;
  auto e = expected();
  auto ids = e["input_ids"];
  auto mask = e["attention_mask"];
  const int64_t steps = e["generated_ids"].size(1);
  KVCache cache = model()->make_cache(1, ids.size(1) + steps);
  auto out = model()->forward(ids, mask, e["pixel_values"], e["image_grid_thw"], &cache, 1);
  auto logits = out.logits.select(1, 0);  // [1, V]
  std::vector<int64_t> gen;
  for (int64_t k = 0; k < steps; ++k) {
    EXPECT_LT(max_abs_diff(logits, e["generated_step_logits"].select(1, k)), kTol) << "step " << k;
    auto next = logits.argmax(-1, /*keepdim=*/true);  // [1, 1]
    gen.push_back(next.item<int64_t>());
    if (k + 1 == steps) break;
    mask = torch::cat({mask, torch::ones({1, 1}, mask.options())}, 1);
    logits = model()->forward_decode(next, mask, out.rope_deltas, cache);
  }
  EXPECT_EQ(gen, to_vec(e["generated_ids"]));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::Values("A", "C", "Q2A"));

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

// Qwen2-VL: Q2A (two images, 8x10 and 4x6 patches) and a shorter prompt of our own with one
// 4x6 image (Q2A's second), left-padded into one batch: every row equals its one-by-one forward
// (logits, positions, rope_deltas) and greedy decoding with the cache gives the same tokens;
// Q2A's row also equals the reference.
TEST(ParityBatch, Qwen2VLLeftPaddedBatchWithDifferentImageSizesEqualsOneByOne) {
  torch::NoGradGuard g;
  auto model = tiny_q2_model();
  model->eval();
  auto a = expected_case("Q2A");
  // B: <|im_start|> text <vision_start> 6 x <image> <vision_end> text <|im_end|> ... (ids of the fixture)
  std::vector<int64_t> b_ids = {4001, 1865, 198, 4010};
  for (int i = 0; i < 6; ++i) b_ids.push_back(4013);
  for (int64_t t : {4011, 3942, 3080, 4002, 198, 4001, 658, 198}) b_ids.push_back(t);
  auto b_in = torch::tensor(b_ids, torch::kLong).view({1, -1});
  auto b_pix = a["pixel_values"].narrow(0, 80, 24);  // rows of the 1x4x6 image
  auto b_grid = a["image_grid_thw"].narrow(0, 1, 1);
  const int64_t la = a["input_ids"].size(1), lb = b_in.size(1), pad = la - lb;
  ASSERT_GT(pad, 0);
  auto ids = torch::cat({a["input_ids"], torch::cat({torch::full({1, pad}, 4000, torch::kLong), b_in}, 1)}, 0);
  auto mask = torch::cat({torch::ones({1, la}, torch::kLong),
                          torch::cat({torch::zeros({1, pad}, torch::kLong), torch::ones({1, lb}, torch::kLong)}, 1)}, 0);
  auto pix = torch::cat({a["pixel_values"], b_pix}, 0);
  auto grid = torch::cat({a["image_grid_thw"], b_grid}, 0);

  const int64_t steps = 6;
  auto greedy = [&](const torch::Tensor& in_ids, const torch::Tensor& in_mask, const torch::Tensor& p,
                    const torch::Tensor& gr, ModelOutput* first) {
    const int64_t nb = in_ids.size(0);
    KVCache cache = model->make_cache(nb, in_ids.size(1) + steps);
    auto out = model->forward(in_ids, in_mask, p, gr, &cache);
    if (first) *first = out;
    auto logits = out.logits.select(1, in_ids.size(1) - 1);
    auto m = in_mask;
    std::vector<std::vector<int64_t>> gen(nb);
    for (int64_t k = 0; k < steps; ++k) {
      auto next = logits.argmax(-1, true);
      for (int64_t r = 0; r < nb; ++r) gen[r].push_back(next[r][0].item<int64_t>());
      m = torch::cat({m, torch::ones({nb, 1}, m.options())}, 1);
      logits = model->forward_decode(next, m, out.rope_deltas, cache);
    }
    return gen;
  };
  ModelOutput batch, one_a, one_b;
  auto gen_batch = greedy(ids, mask, pix, grid, &batch);
  auto gen_a = greedy(a["input_ids"], a["attention_mask"], a["pixel_values"], a["image_grid_thw"], &one_a);
  auto gen_b = greedy(b_in, torch::ones({1, lb}, torch::kLong), b_pix, b_grid, &one_b);
  EXPECT_LT(max_abs_diff(batch.logits[0], one_a.logits[0]), kTol);
  EXPECT_LT(max_abs_diff(batch.logits[1].narrow(0, pad, lb), one_b.logits[0]), kTol);
  EXPECT_LT(max_abs_diff(one_a.logits, a["logits"]), kTol);
  EXPECT_TRUE(torch::equal(batch.position_ids.select(1, 1).narrow(1, pad, lb), one_b.position_ids.select(1, 0)));
  EXPECT_EQ(batch.rope_deltas[1][0].item<int64_t>(), one_b.rope_deltas[0][0].item<int64_t>() - pad);
  EXPECT_EQ(batch.rope_deltas[0][0].item<int64_t>(), a["rope_deltas"][0][0].item<int64_t>());
  EXPECT_EQ(gen_batch[0], gen_a[0]);
  EXPECT_EQ(gen_batch[1], gen_b[0]);
  // The image embeddings of B's image inside the batch are Q2A's second image's.
  EXPECT_LT(max_abs_diff(batch.image_embeds.narrow(0, 26, 6), a["image_embeds"].narrow(0, 20, 6)), kTol);
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
