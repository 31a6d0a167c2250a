// `refract infer`'s library entry point end to end (model dir + tokenizer + image + chat
// template + generation) against an independent composition: the prompt spelled out as
// ChatML text, the HF processor's pixel_values from fixture A, and greedy decoding by full
// recomputation without a cache.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "fixture_video.h"
#include "commands/infer.h"
#include "io/torch_tensors.h"
#include "model/init.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "temp_dir.h"
#include "test_device.h"
#include "vision/preprocess_video.h"

namespace refract::commands {
namespace {
namespace fs = std::filesystem;

const std::string kFixtures = REFRACT_FIXTURES_DIR;

// A very small model over the real Qwen vocabulary, saved in HF layout with the tokenizer (in a
// directory removed when the test process exits).
std::string make_model_dir(const text::Tokenizer& tok) {
  model::Qwen2_5_VLConfig c = model::preset_config("tiny");
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.mrope_section = {2, 3, 3};
  c.tie_word_embeddings = true;
  auto& v = c.vision_config;
  v.depth = 2;
  v.fullatt_block_indexes = {1};
  v.hidden_size = 32;
  v.num_heads = 2;
  v.intermediate_size = 64;
  v.out_hidden_size = c.hidden_size;
  c.vocab_size = tok.vocab_size();
  c.bos_token_id = tok.token_to_id("<|endoftext|>");
  c.pad_token_id = c.bos_token_id;
  c.eos_token_id = tok.token_to_id("<|im_end|>");
  c.vision_start_token_id = tok.token_to_id("<|vision_start|>");
  c.vision_end_token_id = tok.token_to_id("<|vision_end|>");
  c.vision_token_id = tok.token_to_id("<|vision_pad|>");
  c.image_token_id = tok.token_to_id("<|image_pad|>");
  c.video_token_id = tok.token_to_id("<|video_pad|>");
  model::Qwen2_5_VL m(c);
  model::init_weights(*m, /*seed=*/3);
  m->name_or_path = kFixtures + "/tokenizer";  // save_pretrained copies tokenizer files
  const std::string dir = refract::testing::process_temp_dir("test_infer");
  model::save_pretrained(*m, dir);
  if (!fs::exists(fs::path(dir) / "tokenizer.json"))
    fs::copy_file(kFixtures + "/tokenizer/tokenizer.json", fs::path(dir) / "tokenizer.json");
  return dir;
}

TEST(Infer, MatchesHandComposedPromptAndUncachedGreedy) {
  auto tok = text::Tokenizer::from_file(kFixtures + "/tokenizer");
  const std::string dir = make_model_dir(tok);
  const int64_t new_tokens = 6;

  InferSettings s;
  s.model_name_or_path = dir;
  s.device = refract::testing::test_device_name();
  s.image = {kFixtures + "/qwen2_5_vl/A/image0.png"};  // 56x84 -> grid 1x4x6 -> 6 tokens
  s.prompt = "Describe this image.";
  s.generation.max_new_tokens = new_tokens;
  auto out = run_infer(s);
  ASSERT_EQ(out.size(), 1u);

  // The same prompt spelled out (Qwen2.5-VL chat template, default system message).
  std::string pads;
  for (int i = 0; i < 6; ++i) pads += "<|image_pad|>";
  const std::string chat =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
      "<|vision_start|>" + pads + "<|vision_end|>Describe this image.<|im_end|>\n"
      "<|im_start|>assistant\n";
  auto ids32 = tok.encode(chat);
  std::vector<int64_t> seq(ids32.begin(), ids32.end());
  auto fx = io::load_tensors(kFixtures + "/qwen2_5_vl/A/expected.safetensors");

  auto m = model::load_pretrained(dir, refract::testing::test_device(), "float32");
  m->eval();
  torch::NoGradGuard ng;
  const int64_t im_end = tok.token_to_id("<|im_end|>");
  const int64_t endoftext = tok.token_to_id("<|endoftext|>");
  std::vector<int32_t> completion;
  std::string finish = "length";
  for (int64_t k = 0; k < new_tokens; ++k) {
    model::ModelInputs in;
    in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0).to(m->device());
    in.pixel_values = fx.at("pixel_values").to(m->device());
    in.image_grid_thw = fx.at("image_grid_thw");
    in.logits_to_keep = 1;
    const int64_t next = m->forward(in).logits[0][0].argmax().item<int64_t>();
    completion.push_back(static_cast<int32_t>(next));
    seq.push_back(next);
    if (next == im_end || next == endoftext) {
      finish = "eos";
      break;
    }
  }
  EXPECT_EQ(out[0].num_tokens, static_cast<int64_t>(completion.size()));
  EXPECT_EQ(out[0].finish_reason, finish);
  EXPECT_EQ(out[0].text, tok.decode(completion, /*skip_special_tokens=*/true));
}

// A video through `refract infer` (FFmpeg decode, qwen-vl-utils sampling at fps 3 -> 6 of 12
// frames, sample_fps 3, second_per_grid_ts 2/3) against the frames qwen-vl-utils itself gave
// for the same clip and settings (tests/fixtures/video/fetch.safetensors), the processor's
// video path, the prompt spelled out and uncached greedy decoding with those seconds.
TEST(Infer, VideoMatchesQwenVlUtilsFramesAndUncachedGreedy) {
  auto tok = text::Tokenizer::from_file(kFixtures + "/tokenizer");
  const std::string dir = make_model_dir(tok);
  const int64_t new_tokens = 5;
  InferSettings s;
  s.model_name_or_path = dir;
  s.device = refract::testing::test_device_name();
  s.video = {kFixtures + "/video/clips/landscape.mp4"};
  s.video_fps = 3;
  s.video_min_pixels = 4 * 28 * 28;
  s.video_max_pixels = 8 * 28 * 28;
  s.prompt = "What changes?";
  s.generation.max_new_tokens = new_tokens;
  const auto out = run_infer(s);
  ASSERT_EQ(out.size(), 1u);

  const std::vector<vision::Image> images = refract::testing::fixture_video_frames("landscape_fps3_small");
  ASSERT_EQ(images.size(), 6u);  // 6 frames of 56x56
  const vision::PreprocessedVideo pv = vision::preprocess_video(images, vision::PreprocessConfig{});
  ASSERT_EQ(pv.num_video_tokens(), 3 * 4 * 4 / 4);  // grid 3x4x4
  std::string pads;
  for (int64_t i = 0; i < pv.num_video_tokens(); ++i) pads += "<|video_pad|>";
  const std::string chat = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                           "<|vision_start|>" + pads + "<|vision_end|>What changes?<|im_end|>\n"
                           "<|im_start|>assistant\n";
  auto ids32 = tok.encode(chat);
  std::vector<int64_t> seq(ids32.begin(), ids32.end());
  const torch::Device dev = refract::testing::test_device();
  auto m = model::load_pretrained(dir, dev, "float32");
  m->eval();
  torch::NoGradGuard ng;
  const int64_t im_end = tok.token_to_id("<|im_end|>");
  const int64_t endoftext = tok.token_to_id("<|endoftext|>");
  std::vector<int32_t> completion;
  for (int64_t k = 0; k < new_tokens; ++k) {
    model::ModelInputs in;
    in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0).to(dev);
    in.pixel_values_videos =
        torch::from_blob(const_cast<float*>(pv.pixel_values.data()), {pv.rows, 1176}, torch::kFloat32).to(dev);
    in.video_grid_thw = torch::tensor(std::vector<int64_t>(pv.grid_thw.begin(), pv.grid_thw.end())).view({1, 3});
    in.second_per_grid_ts = torch::tensor(std::vector<float>{2.0f / 3.0f});  // temporal_patch_size / sample_fps
    in.logits_to_keep = 1;
    const int64_t next = m->forward(in).logits[0][0].argmax().item<int64_t>();
    completion.push_back(static_cast<int32_t>(next));
    seq.push_back(next);
    if (next == im_end || next == endoftext) break;
  }
  EXPECT_EQ(out[0].num_tokens, static_cast<int64_t>(completion.size()));
  EXPECT_EQ(out[0].text, tok.decode(completion, /*skip_special_tokens=*/true));
}

}  // namespace
}  // namespace refract::commands
