// Video input for both families: positions, rope_deltas, video embeddings and logits against
// transformers (tests/fixtures/video/<family>.safetensors, made by make_video_golden.py on the
// tiny fixture checkpoints: text, a video of 3 temporal patches and an image in one prompt,
// Qwen2.5-VL with second_per_grid_ts 0.75), and the time positions of a long video by hand.
#include "model_test_util.h"

using namespace refract::model;
namespace io = refract::io;
using namespace refract::model::test_util;

namespace {

constexpr double kTol = 1e-4;

std::map<std::string, torch::Tensor> video_golden(const std::string& family) {
  return io::load_tensors(std::string(REFRACT_FIXTURES_DIR) + "/video/" + family + ".safetensors");
}

class VideoParity : public ::testing::TestWithParam<std::string> {
 protected:
  Qwen2_5_VL model() const { return GetParam() == "qwen2_vl" ? tiny_q2_model() : tiny_model(); }
};

TEST_P(VideoParity, PositionsEmbeddingsAndLogits) {
  torch::NoGradGuard g;
  auto m = model();
  m->eval();
  auto e = video_golden(GetParam());
  const torch::Tensor spg = e.count("second_per_grid_ts") ? e["second_per_grid_ts"] : torch::Tensor();
  auto r = m->get_rope_index(e["input_ids"], e["image_grid_thw"], e["attention_mask"], e["video_grid_thw"], spg);
  EXPECT_TRUE(torch::equal(r.position_ids, e["position_ids"])) << r.position_ids[0] << e["position_ids"][0];
  EXPECT_TRUE(torch::equal(r.rope_deltas, e["rope_deltas"]));
  auto ve = m->encode_images(e["pixel_values_videos"], e["video_grid_thw"]);
  ASSERT_EQ(ve.sizes(), e["video_embeds"].sizes());
  EXPECT_LT(max_abs_diff(ve, e["video_embeds"]), kTol);
  ModelInputs in;
  in.input_ids = e["input_ids"];
  in.attention_mask = e["attention_mask"];
  in.pixel_values = e["pixel_values"];
  in.image_grid_thw = e["image_grid_thw"];
  in.pixel_values_videos = e["pixel_values_videos"];
  in.video_grid_thw = e["video_grid_thw"];
  in.second_per_grid_ts = spg;
  auto out = m->forward(in);
  ASSERT_EQ(out.logits.sizes(), e["logits"].sizes());
  EXPECT_LT(max_abs_diff(out.logits, e["logits"]), kTol);
  EXPECT_TRUE(torch::equal(out.position_ids, e["position_ids"]));
  // Greedy decoding continues from the prefill's rope_deltas.
  EXPECT_TRUE(torch::equal(out.rope_deltas, e["rope_deltas"]));
}

INSTANTIATE_TEST_SUITE_P(Families, VideoParity, ::testing::Values("qwen2_5_vl", "qwen2_vl"));

// A video longer than wide, by hand (transformers 4.50's rule, the original Qwen code: the next
// position follows the largest position of the video, time included). Prompt: 2 text tokens,
// <vision_start>, 4 video tokens (grid 4x2x2: one merged token per temporal patch),
// <vision_end>, 1 text token.
TEST(VideoRope, TimePositionsByFamily) {
  auto check = [](Qwen2_5_VL m, const std::vector<int64_t>& want_t, int64_t after, const torch::Tensor& spg) {
    const auto& c = m->config();
    auto ids = torch::tensor(std::vector<int64_t>{5, 6, c.vision_start_token_id, c.video_token_id, c.video_token_id,
                                                  c.video_token_id, c.video_token_id, c.vision_end_token_id, 7})
                   .view({1, -1});
    auto grid = torch::tensor(std::vector<int64_t>{4, 2, 2}).view({1, 3});
    auto r = m->get_rope_index(ids, torch::Tensor(), torch::Tensor(), grid, spg);
    auto p = r.position_ids;
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(p[0][0][3 + k].item<int64_t>(), 3 + want_t[k]) << "t of frame " << k;
      EXPECT_EQ(p[1][0][3 + k].item<int64_t>(), 3);
      EXPECT_EQ(p[2][0][3 + k].item<int64_t>(), 3);
    }
    EXPECT_EQ(p[0][0][7].item<int64_t>(), after);  // <vision_end>
    EXPECT_EQ(r.rope_deltas[0][0].item<int64_t>(), after + 2 - 9);
  };
  // Qwen2.5-VL, tokens_per_second 2: t * 1.0 * 2 -> 0, 2, 4, 6; next = 3 + 6 + 1.
  check(tiny_model(), {0, 2, 4, 6}, 10, torch::tensor({1.0f}));
  // second_per_grid_ts absent = 1.0.
  check(tiny_model(), {0, 2, 4, 6}, 10, torch::Tensor());
  // 0.25 s per patch: t * 0.5 truncated -> 0, 0, 1, 1.
  check(tiny_model(), {0, 0, 1, 1}, 5, torch::tensor({0.25f}));
  // Qwen2-VL: the temporal patch number, whatever the seconds.
  check(tiny_q2_model(), {0, 1, 2, 3}, 7, torch::tensor({1.0f}));
}

TEST(VideoRope, TokenCountMismatchNamesTheVideoTokenId) {
  torch::NoGradGuard g;
  auto m = tiny_q2_model();
  auto e = video_golden("qwen2_vl");
  auto ids = e["input_ids"].clone();
  auto pos = (ids[0] == 4014).nonzero()[0][0].item<int64_t>();
  ids[0][pos] = 5;
  ModelInputs in;
  in.input_ids = ids;
  in.pixel_values = e["pixel_values"];
  in.image_grid_thw = e["image_grid_thw"];
  in.pixel_values_videos = e["pixel_values_videos"];
  in.video_grid_thw = e["video_grid_thw"];
  try {
    m->forward(in);
    FAIL() << "expected an error";
  } catch (const refract::Error& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("video features and video tokens do not match"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4014"), std::string::npos) << msg;
  }
}

}  // namespace
