// The Qwen2-VL family (model_type qwen2_vl) through the commands, end to end on a tiny model
// made by `refract model init --model_type qwen2_vl`: LoRA SFT with vision targets in Qwen2-VL's
// names, the PEFT adapter on disk, export (merge), model forward, infer and eval. GRPO runs in
// tests/train/test_recipes.cpp, serve in tests/serve/test_serve_e2e.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fixture_video.h"
#include "commands/infer.h"
#include "common/atomic_file.h"
#include "data/load.h"
#include "data/shapes/synth.h"
#include "io/torch_tensors.h"
#include "model/open_model.h"
#include "model/qwen2_5_vl.h"
#include "text/bpe_trainer.h"
#include "temp_dir.h"
#include "test_device.h"
#include "text/chat_template.h"
#include "vision/preprocess_video.h"

namespace refract::commands {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct World {
  std::string root, base, jsonl, images, adapter, merged, first_image, question;
};

int run(const std::string& args, const std::string& log) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + refract::testing::with_test_device(args) + " > " + log + " 2>&1";
  return std::system(cmd.c_str());
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Built once: 8 REC samples, a BPE tokenizer, `model init --model_type qwen2_vl`, 2 LoRA SFT
// steps with the decoder and two Qwen2-VL vision targets, and the export of base + adapter.
const World& world() {
  static const refract::testing::TempDir dir("qwen2_vl");  // removed at process exit
  static World w = [] {
    World w;
    w.root = dir.path();
    data::shapes::SynthConfig sc;
    sc.num_samples = 8;
    sc.seed = 5;
    sc.output = w.root + "/data";
    sc.num_workers = 1;
    w.jsonl = data::shapes::synthesize(sc).jsonl_path;
    w.images = w.root + "/data";
    data::DataConfig dc;
    dc.data_file_paths = w.jsonl;
    dc.image_folders = w.images;
    dc.question_template = "none";
    std::vector<std::string> corpus;
    for (const auto& s : data::load_dataset(dc).samples) {
      corpus.push_back(s.response);
      for (const auto& m : s.prompt)
        for (const auto& it : m.content) {
          corpus.push_back(it.text);
          if (w.question.empty() && !it.text.empty()) w.question = it.text;
        }
      if (w.first_image.empty()) w.first_image = s.images.at(0).path;
    }
    text::build_byte_level_bpe_tokenizer(corpus, 340, w.root + "/tok");
    w.base = w.root + "/base";
    EXPECT_EQ(run("model init --preset tiny --model_type qwen2_vl --tokenizer " + w.root + "/tok --output " + w.base +
                      " --seed 4 --threads 1",
                  w.root + "/init.log"),
              0)
        << read_file(w.root + "/init.log");
    const std::string sft = w.root + "/sft";
    EXPECT_EQ(run("sft --model " + w.base + " --data_file_paths " + w.jsonl + " --image_folders " + w.images +
                      " --question_template none --use_peft --lora_r 4 --lora_alpha 16 --lora_dropout 0"
                      " --lora_target_modules all-linear attn.qkv mlp.fc1 --learning_rate 0.05"
                      " --lr_scheduler_type constant --max_steps 2 --per_device_train_batch_size 2"
                      " --report_to none --threads 1 --output_dir " + sft,
                  w.root + "/sft.log"),
              0)
        << read_file(w.root + "/sft.log");
    w.adapter = sft + "/checkpoint-2";
    w.merged = w.root + "/merged";
    EXPECT_EQ(run("export --model " + w.base + " --adapter " + w.adapter + " --output " + w.merged + " --threads 1",
                  w.root + "/export.log"),
              0)
        << read_file(w.root + "/export.log");
    return w;
  }();
  return w;
}

TEST(Qwen2VLFamily, ModelInitWritesAQwen2VLCheckpoint) {
  const World& w = world();
  const json c = json::parse(read_file(w.base + "/config.json"));
  EXPECT_EQ(c["model_type"], "qwen2_vl");
  EXPECT_EQ(c["architectures"][0], "Qwen2VLForConditionalGeneration");
  EXPECT_EQ(c["vision_config"]["hidden_act"], "quick_gelu");
  EXPECT_EQ(c["vision_config"]["hidden_size"], c["hidden_size"]);  // Qwen2-VL: the merger's output width
  auto t = io::load_tensors(w.base);
  EXPECT_TRUE(t.count("visual.blocks.0.norm1.bias"));  // LayerNorm with bias
  EXPECT_TRUE(t.count("visual.blocks.1.mlp.fc2.weight"));
  EXPECT_TRUE(t.count("visual.merger.ln_q.bias"));
  EXPECT_FALSE(t.count("visual.blocks.0.mlp.gate_proj.weight"));
}

TEST(Qwen2VLFamily, LoraAdaptsTheNamedVisionModulesInPeftLayout) {
  const World& w = world();
  const json ac = json::parse(read_file(w.adapter + "/adapter_config.json"));
  std::set<std::string> targets;
  for (const auto& t : ac["target_modules"]) targets.insert(t.get<std::string>());
  EXPECT_TRUE(targets.count("visual.blocks.0.attn.qkv")) << ac.dump();
  EXPECT_TRUE(targets.count("visual.blocks.1.mlp.fc1")) << ac.dump();
  EXPECT_TRUE(targets.count("layers.0.self_attn.q_proj")) << ac.dump();
  // Only what was asked: not fc2, not the attention output, not the merger.
  for (const auto& t : targets) {
    EXPECT_EQ(t.find("mlp.fc2"), std::string::npos) << t;
    EXPECT_EQ(t.find("attn.proj"), std::string::npos) << t;
    EXPECT_EQ(t.find("merger"), std::string::npos) << t;
  }
  auto t = io::load_tensors(w.adapter + "/adapter_model.safetensors");
  ASSERT_TRUE(t.count("base_model.model.model.visual.blocks.0.mlp.fc1.lora_B.weight"));
  // Trained: lora_B moved away from its zero init.
  EXPECT_GT(t["base_model.model.model.visual.blocks.0.mlp.fc1.lora_B.weight"].abs().max().item<double>(), 0.0);
}

TEST(Qwen2VLFamily, ExportEqualsBasePlusAdapterInForwardAndInfer) {
  const World& w = world();
  // A prompt with an image, as `refract model forward` reads it: from infer's own template.
  InferSettings s;
  s.model_name_or_path = w.base;
  s.device = refract::testing::test_device_name();
  s.image = {w.first_image};
  s.prompt = w.question;
  s.threads = 1;
  s.generation.max_new_tokens = 8;
  s.generation.do_sample = false;
  const auto with_adapter = [&] {
    InferSettings a = s;
    a.adapter = w.adapter;
    return run_infer(a);
  }();
  InferSettings m = s;
  m.model_name_or_path = w.merged;
  m.device = refract::testing::test_device_name();
  const auto merged = run_infer(m);
  ASSERT_EQ(with_adapter.size(), 1u);
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].text, with_adapter[0].text);
  EXPECT_EQ(merged[0].num_tokens, with_adapter[0].num_tokens);

  // Logits of `refract model forward`: merged == base + adapter != base.
  torch::NoGradGuard g;
  auto model = model::load_pretrained(w.base, refract::testing::test_device(), "float32");
  const auto& c = model->config();
  const int64_t n_img = 4;  // a 1x4x4 grid: 16 patches, 4 image tokens
  std::vector<int64_t> ids = {5, 6, c.vision_start_token_id};
  for (int64_t i = 0; i < n_img; ++i) ids.push_back(c.image_token_id);
  for (int64_t t : {c.vision_end_token_id, int64_t(7), int64_t(8), int64_t(9)}) ids.push_back(t);
  torch::manual_seed(0);
  io::save_tensors(w.root + "/in.safetensors",
                   {{"input_ids", torch::tensor(ids).view({1, -1})},
                    {"pixel_values", torch::randn({16, c.vision_config.patch_dim()})},
                    {"image_grid_thw", torch::tensor(std::vector<int64_t>{1, 4, 4}).view({1, 3})}});
  auto forward = [&](const std::string& name, const std::string& args) {
    const std::string out = w.root + "/" + name + ".safetensors";
    EXPECT_EQ(run("model forward " + args + " --inputs " + w.root + "/in.safetensors --output " + out + " --threads 1",
                  w.root + "/" + name + ".log"),
              0)
        << read_file(w.root + "/" + name + ".log");
    return io::load_tensors(out)["logits"];
  };
  const auto base = forward("f_base", "--model " + w.base);
  const auto adapted = forward("f_adapter", "--model " + w.base + " --adapter " + w.adapter);
  const auto exported = forward("f_merged", "--model " + w.merged);
  EXPECT_LT(max_abs_diff(exported, adapted), 1e-4);
  EXPECT_GT(max_abs_diff(adapted, base), 1e-3);
}

// `refract infer --video` through the binary on the Qwen2-VL model: the printed completion is
// run_infer's for the same settings (FFmpeg + qwen-vl-utils sampling flags reach the code), and
// bad settings / files fail naming what is wrong.
TEST(Qwen2VLFamily, InferTakesAVideoFromTheCommandLine) {
  const World& w = world();
  const std::string clip = std::string(REFRACT_FIXTURES_DIR) + "/video/clips/landscape.mp4";
  const std::string log = w.root + "/infer_video.log";
  ASSERT_EQ(run("infer --model " + w.base + " --video " + clip +
                    " --video_fps 3 --video_min_pixels 3136 --video_max_pixels 6272 --prompt 'What changes?'"
                    " --max_new_tokens 4 --threads 1",
                log),
            0)
      << read_file(log);
  InferSettings s;
  s.model_name_or_path = w.base;
  s.device = refract::testing::test_device_name();
  s.video = {clip};
  s.video_fps = 3;
  s.video_min_pixels = 3136;
  s.video_max_pixels = 6272;
  s.prompt = "What changes?";
  s.generation.max_new_tokens = 4;
  const auto out = run_infer(s);
  ASSERT_EQ(out.size(), 1u);
  const std::string printed = read_file(log);
  EXPECT_NE(printed.find(out[0].text + "\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("6 frames of 12 sampled at 3.000 fps -> 6 frames of 56x56, 12 video tokens"), std::string::npos)
      << printed;
  const std::string png = std::string(REFRACT_FIXTURES_DIR) + "/video/clips/list_0.png";
  EXPECT_NE(run("infer --model " + w.base + " --video " + png + " --prompt x --max_new_tokens 1", log), 0);
  EXPECT_NE(read_file(log).find("nframes should in interval [2, 1]"), std::string::npos) << read_file(log);
  EXPECT_NE(run("infer --model " + w.base + " --video " + clip + " --video_fps -1 --prompt x", log), 0);
  EXPECT_NE(read_file(log).find("video_fps must be >= 0"), std::string::npos) << read_file(log);
}

// `refract sft` on a video sample (ms-swift record, <video> placeholder, qwen-vl-utils keys):
// the first step's logged loss equals the mean assistant-token cross-entropy of a forward built
// by hand from the frames qwen-vl-utils gave for that clip and those settings.
TEST(Qwen2VLFamily, SftTrainsOnAVideoSample) {
  const World& w = world();
  const std::string clips = std::string(REFRACT_FIXTURES_DIR) + "/video/clips";
  const std::string jsonl = w.root + "/video_sft.jsonl";
  write_file_atomic(jsonl, R"({"query": "<video>What changes?", "response": "the colours", "videos": [{"video": "landscape.mp4", "fps": 3, "min_pixels": 3136, "max_pixels": 6272}]})"
                           "\n");
  const std::string out = w.root + "/sft_video";
  const std::string log = w.root + "/sft_video.log";
  ASSERT_EQ(run("sft --model " + w.base + " --data_file_paths " + jsonl + " --image_folders " + clips +
                    " --question_template none --max_steps 1 --per_device_train_batch_size 1 --learning_rate 0.001"
                    " --report_to none --threads 1 --output_dir " + out,
                log),
            0)
      << read_file(log);
  const json state = json::parse(read_file(out + "/checkpoint-1/trainer_state.json"));
  ASSERT_FALSE(state["log_history"].empty()) << state.dump();
  const double logged = state["log_history"][0]["loss"].get<double>();

  torch::set_num_threads(1);
  model::ModelSettings ms;
  ms.model_name_or_path = w.base;
  ms.device = refract::testing::test_device_name();
  model::OpenedModel m = model::open_model(ms);
  const torch::Device dev = refract::testing::test_device();
  const std::vector<vision::Image> images = refract::testing::fixture_video_frames("landscape_fps3_small");
  const vision::PreprocessedVideo pv = vision::preprocess_video(images, m.processor);
  const std::vector<text::Message> msgs = {
      {"user", {text::ContentItem::make_video(0, pv.num_video_tokens()), text::ContentItem::make_text("What changes?")}},
      {"assistant", {text::ContentItem::make_text("the colours")}}};
  const text::EncodedChat chat = text::apply_chat_template(m.tok(), msgs, /*add_generation_prompt=*/false);
  model::ModelInputs in;
  in.input_ids = torch::tensor(std::vector<int64_t>(chat.ids.begin(), chat.ids.end()), torch::kLong).view({1, -1}).to(dev);
  in.pixel_values_videos =
      torch::from_blob(const_cast<float*>(pv.pixel_values.data()), {pv.rows, 1176}, torch::kFloat32).to(dev);
  in.video_grid_thw = torch::tensor(std::vector<int64_t>(pv.grid_thw.begin(), pv.grid_thw.end())).view({1, 3});
  in.second_per_grid_ts = torch::tensor(std::vector<float>{2.0f / 3.0f});
  torch::NoGradGuard ng;
  const torch::Tensor lp = m.model->forward(in).logits[0].to(torch::kFloat32).log_softmax(-1).cpu();
  double sum = 0, count = 0;
  for (size_t t = 1; t < chat.ids.size(); ++t) {
    if (!chat.assistant_mask[t]) continue;
    sum -= lp[int64_t(t) - 1][chat.ids[t]].item<double>();
    count += 1;
  }
  ASSERT_GT(count, 0);
  EXPECT_NEAR(logged, sum / count, 1e-4) << read_file(log);
}

TEST(Qwen2VLFamily, EvalScoresTheMergedModel) {
  const World& w = world();
  const std::string out = w.root + "/eval";
  ASSERT_EQ(run("eval --model " + w.merged + " --data_file_paths " + w.jsonl + " --image_folders " + w.images +
                    " --question_template none --task rec --max_samples 3 --max_new_tokens 8 --threads 1"
                    " --output_dir " + out,
                w.root + "/eval.log"),
            0)
      << read_file(w.root + "/eval.log");
  const json e = json::parse(read_file(out + "/eval.json"));
  ASSERT_TRUE(e.contains("datasets")) << e.dump();
  EXPECT_EQ(e["datasets"][0]["num_samples"], 3) << e.dump();
}

}  // namespace
}  // namespace refract::commands
