// `refract model forward` on fixture C and `refract model init` end to end.
#include "model_test_util.h"

#include <cstdlib>

#include "common/atomic_file.h"
#include "model/init.h"
#include "test_device.h"

using namespace refract::model;
using namespace refract::model::test_util;
namespace io = refract::io;
namespace fs = std::filesystem;

namespace {

int run(const std::string& args) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + refract::testing::with_test_device(args) + " > /dev/null 2>&1";
  return std::system(cmd.c_str());
}

// A minimal byte-level BPE tokenizer.json: 300 plain tokens, then the Qwen added tokens at
// ids that differ from Qwen's, so nothing can be hard-coded.
std::string write_small_tokenizer(const std::string& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 300; ++i) vocab["t" + std::to_string(i)] = i;
  const char* added[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                         "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"};
  nlohmann::json at = nlohmann::json::array();
  int id = 300;
  for (const char* a : added) at.push_back({{"id", id++}, {"content", a}, {"special", true}});
  nlohmann::json tj = {{"version", "1.0"},
                       {"added_tokens", at},
                       {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  const std::string path = dir + "/tokenizer.json";
  refract::write_file_atomic(path, tj.dump());
  return path;
}

TEST(ModelCli, ForwardOnFixtureC) {
  auto e = expected("C");
  const std::string dir = temp_dir("cli_forward");
  io::save_tensors(dir + "/in.safetensors", {{"input_ids", e["input_ids"]},
                                             {"attention_mask", e["attention_mask"]},
                                             {"pixel_values", e["pixel_values"]},
                                             {"image_grid_thw", e["image_grid_thw"]}});
  ASSERT_EQ(run("model forward --model " + fixture("tiny") + " --inputs " + dir + "/in.safetensors --output " + dir +
                "/out.safetensors --threads 2"),
            0);
  auto out = io::load_tensors(dir + "/out.safetensors");
  EXPECT_LT(max_abs_diff(out["logits"], e["logits"]), 1e-4);
  EXPECT_LT(max_abs_diff(out["image_embeds"], e["image_embeds"]), 1e-4);
  EXPECT_TRUE(torch::equal(out["position_ids"], e["position_ids"]));
  EXPECT_TRUE(torch::equal(out["rope_deltas"], e["rope_deltas"]));
  // A missing input is an error (non-zero exit), not a crash.
  EXPECT_NE(run("model forward --model " + fixture("tiny") + " --inputs " + dir + "/none.safetensors --output " + dir +
                "/o2.safetensors"),
            0);
}

// Video inputs in transformers' names reach the model through `refract model forward`
// (golden: tests/fixtures/video/qwen2_5_vl.safetensors, with second_per_grid_ts).
TEST(ModelCli, ForwardWithAVideo) {
  auto e = io::load_tensors(std::string(REFRACT_FIXTURES_DIR) + "/video/qwen2_5_vl.safetensors");
  const std::string dir = temp_dir("cli_forward_video");
  std::vector<std::pair<std::string, torch::Tensor>> in;
  for (const char* k : {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "pixel_values_videos",
                        "video_grid_thw", "second_per_grid_ts"})
    in.emplace_back(k, e[k]);
  io::save_tensors(dir + "/in.safetensors", in);
  ASSERT_EQ(run("model forward --model " + fixture("tiny") + " --inputs " + dir + "/in.safetensors --output " + dir +
                "/out.safetensors --threads 2"),
            0);
  auto out = io::load_tensors(dir + "/out.safetensors");
  EXPECT_LT(max_abs_diff(out["logits"], e["logits"]), 1e-4);
  EXPECT_LT(max_abs_diff(out["video_embeds"], e["video_embeds"]), 1e-4);
  EXPECT_TRUE(torch::equal(out["position_ids"], e["position_ids"]));
}

TEST(ModelCli, InitQwen2VL) {
  const std::string dir = temp_dir("cli_init_q2");
  const std::string tok = write_small_tokenizer(dir);
  const std::string out = dir + "/model";
  ASSERT_EQ(run("model init --preset tiny --model_type qwen2_vl --tokenizer " + tok + " --output " + out), 0);
  auto m = load_pretrained(out, torch::kCPU);
  EXPECT_EQ(m->config().model_type, "qwen2_vl");
  EXPECT_TRUE(m->named_parameters().contains("visual.blocks.0.mlp.fc1.weight"));
  // An unknown family is refused by the flag's choices.
  EXPECT_NE(run("model init --preset tiny --model_type qwen3_vl --tokenizer " + tok + " --output " + dir + "/x"), 0);
}

TEST(ModelCli, InitTinyTakesVocabAndIdsFromTheTokenizer) {
  const std::string dir = temp_dir("cli_init");
  const std::string tok = write_small_tokenizer(dir);
  const std::string out = dir + "/model";
  ASSERT_EQ(run("model init --preset tiny --tokenizer " + tok + " --output " + out + " --seed 3"), 0);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  auto gen = nlohmann::json::parse(refract::read_file(out + "/generation_config.json"));
  EXPECT_EQ(gen["eos_token_id"], nlohmann::json::array({302, 300}));
  auto m = load_pretrained(out, torch::kCPU);
  const auto& c = m->config();
  EXPECT_EQ(c.vocab_size, 308);
  EXPECT_EQ(c.image_token_id, 306);
  EXPECT_EQ(c.vision_start_token_id, 303);
  EXPECT_EQ(c.eos_token_id, 302);
  // The model runs on an image prompt built with those ids.
  torch::NoGradGuard g;
  auto grid = torch::tensor(std::vector<int64_t>{1, 4, 4}).view({1, 3});
  auto pix = torch::randn({16, c.vision_config.patch_dim()});
  auto ids = torch::tensor(std::vector<int64_t>{301, 5, 303, 306, 306, 306, 306, 304, 7}).view({1, 9});
  auto o = m->forward(ids, torch::Tensor(), pix, grid);
  EXPECT_EQ(o.logits.sizes(), (std::vector<int64_t>{1, 9, 308}));
  EXPECT_TRUE(torch::isfinite(o.logits).all().item<bool>());
}

TEST(ModelInit, FanInStatistics) {
  // The spec of the init: N(0, 1/fan_in) weights, N(0, 1) embeddings, x0.5 on residual outputs.
  auto c = preset_config("tiny");
  c.vocab_size = 512;
  Qwen2_5_VL m(c);
  init_weights(*m, 1);
  auto p = m->named_parameters();
  auto std_of = [&](const std::string& n) { return p[n].std().item<double>(); };
  EXPECT_NEAR(std_of("model.embed_tokens.weight"), 1.0, 0.02);
  EXPECT_NEAR(std_of("model.layers.0.self_attn.q_proj.weight"), 1.0 / 16, 0.002);
  EXPECT_NEAR(std_of("model.layers.0.self_attn.o_proj.weight"), 0.5 / 16, 0.001);
  EXPECT_NEAR(std_of("model.layers.0.mlp.down_proj.weight"), 0.5 / std::sqrt(512.0), 0.001);
  EXPECT_NEAR(std_of("visual.patch_embed.proj.weight"), 1.0 / std::sqrt(1176.0), 0.001);
  EXPECT_NEAR(std_of("lm_head.weight"), 1.0 / 16, 0.002);
  EXPECT_EQ(p["model.layers.0.self_attn.q_proj.bias"].abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(p["model.norm.weight"], torch::ones({c.hidden_size})));
  // The same seed gives the same weights.
  Qwen2_5_VL m2(c);
  init_weights(*m2, 1);
  EXPECT_TRUE(torch::equal(m2->named_parameters()["model.layers.1.mlp.up_proj.weight"],
                           p["model.layers.1.mlp.up_proj.weight"]));
}

TEST(ModelInit, PresetSizes) {
  for (const std::string family : {"qwen2_5_vl", "qwen2_vl"}) {
    for (const std::string preset : {"tiny", "small"}) {
      auto c = preset_config(preset, family);
      c.vocab_size = 1000;
      Qwen2_5_VL m(c);
      const int64_t non_embedding = count_parameters(*m) - 2 * c.vocab_size * c.hidden_size;
      if (preset == "tiny") {
        EXPECT_GT(non_embedding, 1'000'000) << family;
        EXPECT_LT(non_embedding, 10'000'000) << family;
      } else {
        EXPECT_GT(non_embedding, 80'000'000) << family;
        EXPECT_LT(non_embedding, 130'000'000) << family;
      }
    }
  }
}

}  // namespace
