// Checkpoint load / save: round trip, both naming layouts, dtype, strictness, config parsing.
#include "model_test_util.h"

#include "common/atomic_file.h"
#include "common/check.h"
#include "model/config.h"

using namespace refract::model;
namespace io = refract::io;
using namespace refract::model::test_util;
namespace fs = std::filesystem;

namespace {

TEST(Config, ParsesFixtureConfigWithRemappedIds) {
  auto c = load_config(fixture("tiny"));
  EXPECT_EQ(c.image_token_id, 4013);
  EXPECT_EQ(c.vision_start_token_id, 4010);
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.mrope_section, (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.vision_config.depth, 4);
  EXPECT_EQ(c.vision_config.fullatt_block_indexes, (std::vector<int64_t>{1, 3}));
  // Round trip through our writer.
  auto c2 = parse_config(config_to_json(c));
  EXPECT_EQ(config_to_json(c2), config_to_json(c));
}

TEST(Config, ParsesQwen2VLVisionNames) {
  // Qwen2-VL spells the tower width embed_dim, the merger output hidden_size, the MLP mlp_ratio.
  auto c = load_config(fixture_q2("tiny_q2"));
  EXPECT_EQ(c.model_type, "qwen2_vl");
  EXPECT_EQ(c.vision_config.hidden_size, 48);
  EXPECT_EQ(c.vision_config.out_hidden_size, 64);
  EXPECT_EQ(c.vision_config.intermediate_size, 96);
  EXPECT_EQ(c.vision_config.hidden_act, "quick_gelu");
  EXPECT_EQ(c.vision_config.depth, 3);
  EXPECT_FALSE(c.tie_word_embeddings);
  // Written back in Qwen2-VL's spelling, and read back to the same config.
  auto j = nlohmann::json::parse(config_to_json(c));
  EXPECT_EQ(j["architectures"][0], "Qwen2VLForConditionalGeneration");
  EXPECT_EQ(j["vision_config"]["embed_dim"], 48);
  EXPECT_EQ(j["vision_config"]["hidden_size"], 64);
  EXPECT_EQ(j["vision_config"]["mlp_ratio"], 2);
  EXPECT_FALSE(j["vision_config"].contains("out_hidden_size"));
  EXPECT_FALSE(j["vision_config"].contains("window_size"));
  EXPECT_EQ(config_to_json(parse_config(config_to_json(c))), config_to_json(c));
}

TEST(Config, UnknownOrMissingModelTypeNamesTheSupportedOnes) {
  auto j = nlohmann::json::parse(refract::read_file(fixture("tiny/config.json")));
  j["model_type"] = "qwen3_vl";
  try {
    parse_config(j.dump(), "x/config.json");
    FAIL() << "expected an error";
  } catch (const refract::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("qwen3_vl"), std::string::npos) << msg;
    EXPECT_NE(msg.find("qwen2_5_vl | qwen2_vl"), std::string::npos) << msg;
  }
  j.erase("model_type");
  try {
    parse_config(j.dump(), "x/config.json");
    FAIL() << "expected an error";
  } catch (const refract::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model_type"), std::string::npos) << e.what();
  }
}

TEST(Config, RejectsInconsistentMropeSection) {
  std::string bad = R"({"model_type": "qwen2_5_vl", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 4]},
    "vision_config": {"out_hidden_size": 64, "hidden_size": 64, "num_heads": 4, "depth": 4,
                      "fullatt_block_indexes": [1, 3]}})";
  EXPECT_THROW(parse_config(bad), refract::Error);
}

TEST(Checkpoint, SaveReloadIsBitIdentical) {
  OneThread one_thread;  // torch::equal of two forwards
  torch::NoGradGuard g;
  auto model = tiny_model();
  const std::string dir = temp_dir("roundtrip");
  save_pretrained(*model, dir);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "config.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "generation_config.json"));
  auto saved = io::load_tensors(dir);
  auto orig = io::load_tensors(fixture("tiny"));
  ASSERT_EQ(saved.size(), orig.size());  // tied: no lm_head.weight either
  for (auto& [name, t] : orig) {
    ASSERT_TRUE(saved.count(name)) << name;
    EXPECT_TRUE(torch::equal(saved[name], t)) << name;
  }
  auto back = load_pretrained(dir, torch::kCPU, "auto");
  auto e = expected("A");
  auto o1 = model->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]);
  auto o2 = back->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]);
  EXPECT_TRUE(torch::equal(o1.logits, o2.logits));
}

TEST(Checkpoint, LoadsNewNamingLayoutAndShards) {
  torch::NoGradGuard g;
  // transformers >= 4.52 names (model.visual.*, model.language_model.*), split in two shards.
  auto orig = io::load_tensors(fixture("tiny"));
  const std::string dir = temp_dir("newlayout");
  std::vector<std::pair<std::string, torch::Tensor>> s1, s2;
  nlohmann::json weight_map;
  for (auto& [name, t] : orig) {
    std::string n = name.rfind("visual.", 0) == 0 ? "model." + name : "model.language_model." + name.substr(6);
    bool first = name.rfind("visual.", 0) == 0;
    (first ? s1 : s2).emplace_back(n, t);
    weight_map[n] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::save_tensors(dir + "/model-00001-of-00002.safetensors", s1);
  io::save_tensors(dir + "/model-00002-of-00002.safetensors", s2);
  refract::write_file_atomic(dir + "/model.safetensors.index.json",
                             nlohmann::json({{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}).dump());
  refract::write_file_atomic(dir + "/config.json", refract::read_file(fixture("tiny/config.json")));
  auto a = tiny_model();
  auto b = load_pretrained(dir, torch::kCPU);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

// Qwen2-VL: the official names (visual.blocks.N.mlp.fc1, visual.merger.ln_q.bias, ...) load
// strictly in both layouts and save back unchanged.
TEST(Checkpoint, Qwen2VLBothLayoutsAndSaveRoundTrip) {
  torch::NoGradGuard g;
  auto orig = io::load_tensors(fixture_q2("tiny_q2"));
  ASSERT_TRUE(orig.count("visual.blocks.0.mlp.fc1.weight"));
  ASSERT_TRUE(orig.count("visual.merger.ln_q.bias"));
  const std::string dir = temp_dir("q2_newlayout");
  std::vector<std::pair<std::string, torch::Tensor>> renamed;
  for (auto& [name, t] : orig) {
    if (name.rfind("visual.", 0) == 0) renamed.emplace_back("model." + name, t);
    else if (name.rfind("model.", 0) == 0) renamed.emplace_back("model.language_model." + name.substr(6), t);
    else renamed.emplace_back(name, t);  // lm_head.weight
  }
  io::save_tensors(dir + "/model.safetensors", renamed);
  refract::write_file_atomic(dir + "/config.json", refract::read_file(fixture_q2("tiny_q2/config.json")));
  auto a = tiny_q2_model();
  auto b = load_pretrained(dir, torch::kCPU);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), orig.size());
  ASSERT_EQ(pa.size(), pb.size());
  for (auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  const std::string out = temp_dir("q2_save");
  save_pretrained(*a, out);
  auto saved = io::load_tensors(out);
  ASSERT_EQ(saved.size(), orig.size());
  for (auto& [name, t] : orig) {
    ASSERT_TRUE(saved.count(name)) << name;
    EXPECT_TRUE(torch::equal(saved[name], t)) << name;
  }
  EXPECT_EQ(load_config(out).model_type, "qwen2_vl");
}

TEST(Checkpoint, MissingOrUnexpectedTensorIsAnError) {
  auto orig = io::load_tensors(fixture("tiny"));
  const std::string dir = temp_dir("strict");
  refract::write_file_atomic(dir + "/config.json", refract::read_file(fixture("tiny/config.json")));
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  for (auto& [name, t] : orig) if (name != "model.norm.weight") ts.emplace_back(name, t);
  io::save_tensors(dir + "/model.safetensors", ts);
  try {
    load_pretrained(dir, torch::kCPU);
    FAIL();
  } catch (const refract::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
  ts.emplace_back("model.norm.weight", orig["model.norm.weight"]);
  ts.emplace_back("model.extra.weight", torch::zeros({2}));
  io::save_tensors(dir + "/model.safetensors", ts);
  try {
    load_pretrained(dir, torch::kCPU);
    FAIL();
  } catch (const refract::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.extra.weight"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, Bfloat16LoadAndSave) {
  torch::NoGradGuard g;
  auto model = tiny_model("bfloat16");
  EXPECT_EQ(model->dtype(), torch::kBFloat16);
  auto e = expected("A");
  auto out = model->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]);
  EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
  // bf16 has ~3 significant digits; logits of magnitude <4 stay within a few 1e-2.
  EXPECT_LT(max_abs_diff(out.logits, e["logits"]), 0.15);
  const std::string dir = temp_dir("bf16");
  save_pretrained(*model, dir);
  EXPECT_EQ(load_config(dir).torch_dtype, "bfloat16");
  auto saved = io::load_tensors(dir);
  EXPECT_EQ(saved["model.norm.weight"].scalar_type(), torch::kBFloat16);
}

TEST(Checkpoint, UntiedEmbeddingsUseLmHead) {
  torch::NoGradGuard g;
  auto c = load_config(fixture("tiny"));
  c.tie_word_embeddings = false;
  Qwen2_5_VL m(c);
  auto names = m->named_parameters();
  ASSERT_TRUE(names.contains("lm_head.weight"));
  auto h = torch::randn({1, 2, c.hidden_size});
  auto expect = torch::matmul(h, m->lm_head->weight.t());
  EXPECT_LT(max_abs_diff(m->compute_logits(h), expect), 1e-5);
  const std::string dir = temp_dir("untied");
  save_pretrained(*m, dir);
  auto back = load_pretrained(dir, torch::kCPU);
  EXPECT_TRUE(torch::equal(back->lm_head->weight, m->lm_head->weight));
}

}  // namespace
