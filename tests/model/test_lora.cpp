// LoRA: identities (zero B = base, adapter = merged, disabled = base), PEFT layout round
// trip, target selection, gradients only on adapters.
#include "model_test_util.h"

#include "common/atomic_file.h"
#include "model/lora.h"

using namespace refract::model;
using namespace refract::model::test_util;
namespace io = refract::io;
namespace fs = std::filesystem;

namespace {

torch::Tensor logits_of(Qwen2_5_VL& m, std::map<std::string, torch::Tensor>& e) {
  return m->forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]).logits;
}

void randomize_b(Qwen2_5_VL& m) {
  torch::NoGradGuard g;
  for (auto& item : m->named_parameters()) {
    if (item.key().find(".lora_B.") != std::string::npos) item.value().normal_(0.0, 0.05);
  }
}

TEST(Lora, AllLinearTargetsLanguageModelOnly) {
  auto m = tiny_model();
  auto adapted = apply_lora(*m, LoraConfig{});
  // 2 layers x (q, k, v, o, gate, up, down); no vision, no lm_head.
  EXPECT_EQ(adapted.size(), 14u);
  for (const auto& p : adapted) EXPECT_EQ(p.rfind("model.layers.", 0), 0u) << p;
  auto m2 = tiny_model();
  LoraConfig c;
  c.lora_target_modules = {"q_proj", "v_proj"};
  EXPECT_EQ(apply_lora(*m2, c).size(), 4u);
  auto m3 = tiny_model();
  c.lora_target_modules = {"all-linear"};
  c.lora_target_vision = true;
  // + vision: 4 blocks x (qkv, proj, gate, up, down) + merger mlp.0, mlp.2
  EXPECT_EQ(apply_lora(*m3, c).size(), 14u + 20u + 2u);
}

TEST(Lora, ZeroInitialisedBLeavesOutputsUnchanged) {
  torch::NoGradGuard g;
  OneThread one_thread;  // torch::equal of two forwards
  auto m = tiny_model();
  m->eval();
  auto e = expected("A");
  auto base = logits_of(m, e);
  apply_lora(*m, LoraConfig{});
  EXPECT_TRUE(torch::equal(logits_of(m, e), base));
}

TEST(Lora, AdapterForwardEqualsMergedForwardAndDisabledEqualsBase) {
  torch::NoGradGuard g;
  OneThread one_thread;  // torch::equal of two forwards
  auto m = tiny_model();
  m->eval();  // dropout off
  auto e = expected("C");
  auto base = logits_of(m, e);
  LoraConfig c;
  c.lora_target_vision = true;
  apply_lora(*m, c);
  randomize_b(m);
  auto adapted = logits_of(m, e);
  EXPECT_GT(max_abs_diff(adapted, base), 1e-3);  // the adapters do something
  {
    LoraDisabledGuard off(*m);
    EXPECT_TRUE(torch::equal(logits_of(m, e), base));
  }
  EXPECT_TRUE(torch::equal(logits_of(m, e), adapted));
  merge_lora(*m);
  EXPECT_FALSE(has_lora(*m));
  EXPECT_LT(max_abs_diff(logits_of(m, e), adapted), 1e-4);
}

TEST(Lora, SaveLoadRoundTripInPeftLayout) {
  torch::NoGradGuard g;
  OneThread one_thread;  // torch::equal of two forwards
  auto m = tiny_model();
  m->eval();
  LoraConfig c;
  c.lora_r = 4;
  c.lora_alpha = 8;
  apply_lora(*m, c);
  randomize_b(m);
  auto e = expected("A");
  auto want = logits_of(m, e);
  const std::string dir = temp_dir("lora");
  save_lora(*m, c, dir);
  auto cfg = nlohmann::json::parse(refract::read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["peft_type"], "LORA");
  auto t = io::load_tensors(dir + "/adapter_model.safetensors");
  EXPECT_EQ(t.size(), 28u);
  ASSERT_TRUE(t.count("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_EQ(t["base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"].sizes(), (std::vector<int64_t>{4, 64}));
  auto m2 = tiny_model();
  m2->eval();
  auto c2 = load_lora(*m2, dir);
  EXPECT_EQ(c2.lora_r, 4);
  EXPECT_TRUE(torch::equal(logits_of(m2, e), want));
  // save_pretrained excludes the adapters: the base checkpoint is unchanged.
  const std::string base_dir = temp_dir("lora_base");
  save_pretrained(*m2, base_dir);
  EXPECT_EQ(io::load_tensors(base_dir).size(), io::load_tensors(fixture("tiny")).size());
  fs::remove_all(dir);
  fs::remove_all(base_dir);
}

TEST(Lora, GradientsOnlyReachAdaptersAfterFreezeBase) {
  auto m = tiny_model();
  m->train();
  apply_lora(*m, LoraConfig{});
  freeze_base(*m);
  randomize_b(m);
  auto e = expected("A");
  logits_of(m, e).pow(2).mean().backward();
  int64_t with_grad = 0;
  for (auto& item : m->named_parameters()) {
    const bool adapter = item.key().find(".lora_") != std::string::npos;
    EXPECT_EQ(item.value().requires_grad(), adapter) << item.key();
    if (adapter) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      with_grad += item.value().grad().abs().sum().item<double>() > 0;
    } else {
      EXPECT_FALSE(item.value().grad().defined()) << item.key();
    }
  }
  EXPECT_EQ(with_grad, 28);
}

TEST(Freeze, VisionAndAligner) {
  auto m = tiny_model();
  freeze_aligner(*m);
  for (auto& item : m->named_parameters()) {
    EXPECT_EQ(item.value().requires_grad(), item.key().rfind("visual.merger.", 0) != 0) << item.key();
  }
  freeze_vision_modules(*m);
  for (auto& item : m->named_parameters()) {
    EXPECT_EQ(item.value().requires_grad(), item.key().rfind("visual.", 0) != 0) << item.key();
  }
  EXPECT_EQ(count_parameters(*m, /*trainable_only=*/true), count_parameters(*m->language_model));
}

}  // namespace
