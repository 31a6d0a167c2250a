// The memory plan (train/memory_plan.h, plan_model.h), torch-free: parameter lists against
// checkpoints written by transformers, parameter totals of the Hub models, and the byte counts of
// two small configurations worked out by hand. (test_memory_plan_model.cpp checks trainability
// against the trainer's own model; bench/train/memory_plan_rss.py the bytes against peak RSS.)
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/check.h"
#include "io/safetensors.h"
#include "train/memory_plan.h"
#include "train/plan_model.h"

namespace refract::train {
namespace {

const std::string kFixtures = REFRACT_FIXTURES_DIR;

// name -> shape of every tensor of a checkpoint.
std::map<std::string, std::vector<int64_t>> checkpoint_shapes(const std::string& path) {
  std::map<std::string, std::vector<int64_t>> out;
  const auto file = io::SafetensorsFile::open(path);  // outlives the loop over its tensors
  for (const auto& t : file->tensors()) out[t.name] = t.shape;
  return out;
}

std::map<std::string, std::vector<int64_t>> plan_shapes(const PlanModel& m, const Trainability& t = {}) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : plan_parameters(m, t)) out[p.name] = p.shape;
  return out;
}

// The plan's parameter list is the checkpoint's, name for name and shape for shape: transformers
// 4.50 wrote both fixtures (Qwen2.5-VL, and Qwen2-VL with LayerNorm blocks, fc1 / fc2 and embed_dim
// / mlp_ratio), so the names and sizes come from the reference, not from refract.
TEST(PlanModel, ParametersAreTheCheckpointsOfBothFamilies) {
  for (const std::string dir : {"/qwen2_5_vl/tiny", "/qwen2_vl/tiny_q2"}) {
    SCOPED_TRACE(dir);
    const PlanModel m = read_plan_model(kFixtures + dir);
    EXPECT_EQ(plan_shapes(m), checkpoint_shapes(kFixtures + dir + "/model.safetensors"));
  }
}

// Totals of the Hub checkpoints. The model pages show 3.75B, 8.29B and 2.21B parameters; the exact
// figures are transformers' num_parameters() of the loaded models (tied embeddings counted once).
// The configs in tests/fixtures/train/hub_configs are the Hub's config.json files.
TEST(PlanModel, HubModelTotals) {
  const std::string hub = kFixtures + "/train/hub_configs/";
  auto total = [&](const std::string& name) {
    int64_t n = 0;
    for (const auto& p : plan_parameters(read_plan_model(hub + name), {})) n += p.numel;
    return n;
  };
  EXPECT_EQ(total("Qwen2.5-VL-3B-Instruct"), 3754622976);
  EXPECT_EQ(total("Qwen2.5-VL-7B-Instruct"), 8292166656);
  EXPECT_EQ(total("Qwen2-VL-2B-Instruct"), 2208985600);
}

// A model small enough to count by hand (tests below).
PlanModel toy() {
  PlanModel m;
  m.vocab_size = 100;
  m.hidden_size = 8;
  m.intermediate_size = 16;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 2;  // head_dim 4
  m.num_key_value_heads = 1;  // kv_dim 4
  m.tie_word_embeddings = false;
  m.vision_depth = 1;
  m.vision_hidden_size = 4;
  m.vision_intermediate_size = 8;
  m.vision_num_heads = 1;
  m.fullatt_block_indexes = {0};
  return m;
}

int64_t count(const std::vector<PlanParameter>& ps, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : ps)
    if (!trainable_only || p.trainable) n += p.numel;
  return n;
}

TEST(PlanModel, ToyCountsByHand) {
  // Vision: patch embed 4 x 3*2*14*14 = 4704; the block: norms 4 + 4, qkv 4*12 + 12 = 60,
  // proj 16 + 4 = 20, gate / up 32 + 8 = 40 each, down 32 + 4 = 36 -> 204; merger: ln_q 4,
  // mlp.0 16*16 + 16 = 272, mlp.2 16*8 + 8 = 136 -> 412. Vision = 5320.
  // Text: embed 800; per layer q 64 + 8, k 32 + 4, v 32 + 4, o 64, gate / up / down 128 each,
  // norms 16 -> 608, x 2 = 1216; final norm 8; lm_head 800. Text = 2824. Total 8144.
  const auto full = plan_parameters(toy(), {});
  EXPECT_EQ(count(full, false), 8144);
  EXPECT_EQ(count(full, true), 8144);
  Trainability frozen;
  frozen.freeze_vision_modules = true;
  EXPECT_EQ(count(plan_parameters(toy(), frozen), true), 2824);
  Trainability aligner;
  aligner.freeze_aligner = true;
  EXPECT_EQ(count(plan_parameters(toy(), aligner), true), 8144 - 412);
  // LoRA r=2 on every decoder Linear: per layer q 2*8 + 8*2 = 32, k 16 + 8 = 24, v 24, o 32,
  // gate 16 + 32 = 48, up 48, down 32 + 16 = 48 -> 256, x 2 layers = 512; only they train.
  Trainability lora;
  lora.use_peft = true;
  lora.lora_r = 2;
  const auto adapted = plan_parameters(toy(), lora);
  EXPECT_EQ(count(adapted, false), 8144 + 512);
  EXPECT_EQ(count(adapted, true), 512);
  lora.lora_target_modules = {"q_proj", "v_proj"};
  EXPECT_EQ(count(plan_parameters(toy(), lora), true), (32 + 24) * 2);
  // A target naming the vision tower adapts it: qkv 2*4 + 12*2 = 32.
  lora.lora_target_modules = {"visual.blocks.0.attn.qkv"};
  EXPECT_EQ(count(plan_parameters(toy(), lora), true), 32);
}

// PEFT's target matching as model/lora.cpp applies it.
TEST(PlanModel, LoraTargetsFollowPeft) {
  const std::vector<std::string> all = {"all-linear"};
  EXPECT_TRUE(lora_selects("model.layers.0.self_attn.q_proj", all));
  EXPECT_FALSE(lora_selects("lm_head", all));                     // the output layer never
  EXPECT_FALSE(lora_selects("visual.blocks.0.attn.qkv", all));    // vision only when named
  EXPECT_FALSE(lora_selects("visual.blocks.0.attn.qkv", {"qkv"}));
  EXPECT_TRUE(lora_selects("visual.blocks.0.attn.qkv", {"visual.blocks.0.attn.qkv"}));
  EXPECT_TRUE(lora_selects("model.layers.3.mlp.up_proj", {"mlp.up_proj"}));  // "." + suffix
  EXPECT_FALSE(lora_selects("model.layers.3.mlp.up_proj", {"p_proj"}));      // not a name boundary
}

TEST(PlanModel, ErrorsNameTheField) {
  try {
    parse_plan_model(R"({"model_type": "llava"})", "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/config.json: model_type 'llava'"), std::string::npos) << e.what();
  }
  try {
    parse_plan_model(R"({"model_type": "qwen2_5_vl", "hidden_size": 10, "num_attention_heads": 4})", "c.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size 10 is not a multiple"), std::string::npos) << e.what();
  }
}

double item(const std::vector<MemoryItem>& items, const std::string& name) {
  for (const auto& i : items)
    if (i.name == name) return i.bytes;
  ADD_FAILURE() << "no item " << name;
  return -1;
}

// SFT of the toy model in fp32, everything trainable, 2 samples of 10 tokens with a 56x56 image.
TEST(MemoryPlan, SftByHand) {
  MemoryPlanInputs in;
  in.trainer = "sft";
  in.model = toy();
  in.torch_dtype = "float32";
  in.per_device_train_batch_size = 2;
  in.max_length = 10;
  in.max_prompt_length = 10;
  in.max_pixels = 3136;  // 4 tokens of 28x28 = 16 patches
  const MemoryPlan p = plan_memory(in);
  EXPECT_EQ(p.image_tokens, 4);
  EXPECT_EQ(p.image_patches, 16);
  EXPECT_EQ(item(p.persistent, "weights"), 8144 * 4);
  EXPECT_EQ(item(p.persistent, "gradients"), 8144 * 4);
  EXPECT_EQ(item(p.persistent, "optimizer state (AdamW)"), 8144 * 8);
  // Decoder: 20 tokens x (8*8 + 2*4 + 4*16 = 136) x 2 layers x 4 B.
  EXPECT_EQ(item(p.training, "decoder activations"), 20 * 136 * 2 * 4);
  // Probabilities: 2 rows x 2 heads x 10 x 10 x 4 B x 2 layers.
  EXPECT_EQ(item(p.training, "attention probabilities"), 2 * 2 * 100 * 4 * 2);
  // Logits: 4 copies x 20 positions x 100 x 4 B.
  EXPECT_EQ(item(p.training, "logits"), 4 * 20 * 100 * 4);
  // Backward: one layer's worth, 20 x 136 x 4 B + 2 x 2 x 100 x 4 B.
  EXPECT_EQ(item(p.training, "backward working set"), 20 * 136 * 4 + 1600);
  // Vision, 2 images of 16 patches: per patch 9*4 + 4*8 = 68 in 1 block, merger 4*16*4 = 256,
  // the pixel rows 16 x 1176; x 4 B. Probabilities: 1 head x 16 x 16 (a full-attention block).
  EXPECT_EQ(item(p.training, "vision activations"), 2 * (16 * 68 + 256 + 16 * 1176) * 4);
  EXPECT_EQ(item(p.training, "vision attention probabilities"), 2 * 16 * 16 * 4);
  EXPECT_EQ(p.peak_bytes, 8144 * 16 + 21760 + 3200 + 12480 + 32000 + 161280 + 2048);
  EXPECT_TRUE(p.rollout.empty());
}

// LoRA keeps less of the frozen base (not the norms' normalised inputs, not the frozen Linears'
// inputs: 3 x 8 + 2 x 4 + 3 x 16 = 80 per token and layer) and adds the adapters' tensors.
TEST(MemoryPlan, LoraActivationsByHand) {
  MemoryPlanInputs in;
  in.trainer = "sft";
  in.model = toy();
  in.torch_dtype = "float32";
  in.trainability.use_peft = true;
  in.trainability.lora_r = 2;
  in.per_device_train_batch_size = 2;
  in.max_length = 10;
  in.max_prompt_length = 10;
  in.max_pixels = 3136;
  // Dropout: per adapted Linear r + 2 x in (the dropped input and its mask): q, k, v, o, gate,
  // up 2 + 16 = 18 each, down 2 + 32 = 34 -> 142.
  in.lora_dropout = 0.05;
  EXPECT_EQ(item(plan_memory(in).training, "decoder activations"), 20 * (80 + 142) * 2 * 4);
  // No dropout: r each, plus each distinct input once: q / k / v's 8, o's 8, gate / up's 8,
  // down's 16 -> 7 x 2 + 40 = 54.
  in.lora_dropout = 0.0;
  EXPECT_EQ(item(plan_memory(in).training, "decoder activations"), 20 * (80 + 54) * 2 * 4);
  EXPECT_EQ(plan_memory(in).trainable_parameters, 512);
}

// GRPO of the toy model: vision frozen, beta != 0 (a reference copy), optimizer state sharded
// over 2 ranks; micro-batch 4 completions of G = 4, 2 micro-batches per generation round,
// prompts of 6 tokens, completions of 3.
TEST(MemoryPlan, GrpoByHand) {
  MemoryPlanInputs in;
  in.trainer = "grpo";
  in.model = toy();
  in.torch_dtype = "float32";
  in.trainability.freeze_vision_modules = true;
  in.beta = 0.04;
  in.optimizer_sharding = true;
  in.world_size = 2;
  in.per_device_train_batch_size = 4;
  in.num_generations = 4;
  in.steps_per_generation = 2;
  in.max_prompt_length = 6;
  in.max_completion_length = 3;
  in.max_pixels = 3136;
  const MemoryPlan p = plan_memory(in);
  EXPECT_EQ(p.trainable_parameters, 2824);
  EXPECT_EQ(item(p.persistent, "weights"), 8144 * 4);
  EXPECT_EQ(item(p.persistent, "reference model"), 8144 * 4);
  EXPECT_EQ(item(p.persistent, "gradients"), 2824 * 4);
  EXPECT_EQ(item(p.persistent, "optimizer state (AdamW)"), 2824 * 8 / 2);
  // One prompt (6 tokens) + 4 completions x 3 tokens; the completions' K / V copies over 9
  // positions (2 x 4 rows x 9 x 4) replace their own k / v.
  EXPECT_EQ(item(p.training, "decoder activations"), (6 * 136 + 12 * (136 - 8) + 2 * 4 * 9 * 4) * 2 * 4);
  // Probabilities: prompt 2 heads x 6 x 6, completions 4 x 2 heads x 3 x 9; x 4 B x 2 layers.
  EXPECT_EQ(item(p.training, "attention probabilities"), (72 + 216) * 4 * 2);
  EXPECT_EQ(item(p.training, "logits"), 3 * 4 * 3 * 100 * 4);
  EXPECT_EQ(item(p.training, "backward working set"), 21120 / 2 + 2304 / 2);
  // Rollout: 8 rows (2 prompts x G) x 2 layers x K and V x kv_dim 4 x 9 positions x 4 B.
  EXPECT_EQ(item(p.rollout, "KV cache"), 2 * 2 * 8 * 4 * 9 * 4);
  EXPECT_EQ(item(p.rollout, "prefill KV cache (before repeat)"), 2 * 2 * 2 * 4 * 9 * 4);
  // Transient: decode logits 3 x 8 x 100 x 4 = 9600 beats the prefill (4992) and the image
  // encoding (2 x (2 x 16 x 16 x 4 + (24 + 16) x 16 x 4) = 9216).
  EXPECT_EQ(item(p.rollout, "generation transient"), 9600);
  // Round: 8 x 3 x (8 + 12) B + image embeddings 2 prompts x 4 tokens x 8 x 4 B.
  EXPECT_EQ(item(p.rollout, "round buffers"), 480 + 256);
  EXPECT_EQ(p.peak_bytes, (32576 * 2 + 11296 * 2) + (21120 + 2304 + 11712 + 14400 + 736));
}

// The memory features change what they should. bf16 as the trainer does it (fp32 master weights,
// autocast): the same 4 + 4 + 8 B per trainable parameter, plus the bf16 weight copies autograd
// keeps; checkpointing shrinks activations; sharding divides the optimizer state; fused
// attention keeps no probabilities.
TEST(MemoryPlan, FeaturesMoveTheRightLines) {
  MemoryPlanInputs in;
  in.trainer = "sft";
  in.model = read_plan_model(kFixtures + "/train/hub_configs/Qwen2.5-VL-3B-Instruct");
  in.torch_dtype = "bfloat16";
  in.trainability.freeze_vision_modules = true;
  in.per_device_train_batch_size = 2;
  in.max_length = 1024;
  const MemoryPlan bf16_storage = plan_memory(in);  // pure bf16: 2 B everywhere
  const double total = static_cast<double>(bf16_storage.total_parameters);
  const double trainable = static_cast<double>(bf16_storage.trainable_parameters);
  EXPECT_EQ(bf16_storage.persistent_bytes, 2 * total + 6 * trainable);
  MemoryPlanInputs b = in;
  b.bf16 = true;
  const MemoryPlan bf = plan_memory(b);
  EXPECT_EQ(bf.persistent_bytes, 4 * total + 12 * trainable);
  EXPECT_EQ(item(bf.training, "bf16 weight copies (autocast)"), 2 * total);
  MemoryPlanInputs c = in;
  c.gradient_checkpointing = true;
  EXPECT_LT(item(plan_memory(c).training, "decoder activations"), item(bf16_storage.training, "decoder activations") / 5);
  MemoryPlanInputs s = in;
  s.optimizer_sharding = true;
  s.world_size = 8;
  EXPECT_EQ(item(plan_memory(s).persistent, "optimizer state (AdamW)"),
            item(bf16_storage.persistent, "optimizer state (AdamW)") / 8);
  MemoryPlanInputs f = in;
  f.fused_attention = true;
  EXPECT_EQ(item(plan_memory(f).training, "attention probabilities"), 0);
  EXPECT_GT(item(bf16_storage.training, "attention probabilities"), 0);
}

// GRPO with gradient checkpointing scores one sequence per row (the trainer cannot share the
// prompt through a recomputed layer): 4 rows x 9 tokens keep their layer inputs (x 8 x 2 layers x
// 4 B), one layer is recomputed (36 x 136 x 4 B), its probabilities are 4 x 2 heads x 9 x 9 x 4 B.
TEST(MemoryPlan, GrpoCheckpointingByHand) {
  MemoryPlanInputs in;
  in.trainer = "grpo";
  in.model = toy();
  in.torch_dtype = "float32";
  in.trainability.freeze_vision_modules = true;
  in.gradient_checkpointing = true;
  in.per_device_train_batch_size = 4;
  in.num_generations = 4;
  in.max_prompt_length = 6;
  in.max_completion_length = 3;
  in.max_pixels = 3136;
  const MemoryPlan p = plan_memory(in);
  EXPECT_EQ(item(p.training, "decoder activations"), 36 * 8 * 2 * 4 + 36 * 136 * 4);
  EXPECT_EQ(item(p.training, "attention probabilities"), 4 * 2 * 81 * 4);
  EXPECT_EQ(item(p.training, "backward working set"), 36 * 136 * 4 + 4 * 2 * 81 * 4);
}

}  // namespace
}  // namespace refract::train
