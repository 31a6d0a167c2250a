// The memory plan against the trainer itself: the parameters and their trainability the plan
// derives from config.json and the settings are, name for name, the ones TrainSetup leaves
// trainable on the real tiny model (LoRA targets, freezing); and `refract grpo|sft --dry_run`
// prints that plan from the command line without training.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "common/atomic_file.h"
#include "common/options.h"
#include "train/dry_run.h"
#include "train/memory_plan.h"
#include "train/plan_model.h"
#include "train/train_loop.h"
#include "train_world.h"

namespace refract::train {
namespace {

using testing::world;

struct Param {
  int64_t numel = 0;
  bool trainable = false;
  bool operator==(const Param& o) const { return numel == o.numel && trainable == o.trainable; }
};
std::ostream& operator<<(std::ostream& os, const Param& p) {
  return os << "{" << p.numel << (p.trainable ? ", trainable}" : ", frozen}");
}

std::map<std::string, Param> from_plan(const TrainingConfig& c) {
  Trainability t;
  t.use_peft = c.use_peft;
  t.lora_r = c.lora_r;
  t.lora_target_modules = c.lora_target_modules;
  t.freeze_vision_modules = c.freeze_vision_modules;
  t.freeze_aligner = c.freeze_aligner;
  std::map<std::string, Param> out;
  for (const auto& p : plan_parameters(read_plan_model(c.model_name_or_path), t)) out[p.name] = {p.numel, p.trainable};
  return out;
}

std::map<std::string, Param> from_trainer(const TrainingConfig& c) {
  TrainSetup setup(c);
  std::map<std::string, Param> out;
  for (const auto& p : setup.model().named_parameters()) out[p.key()] = {p.value().numel(), p.value().requires_grad()};
  return out;
}

TEST(MemoryPlanModel, TrainabilityIsTheTrainers) {
  struct Case {
    const char* what;
    void (*set)(TrainingConfig&);
  };
  const Case cases[] = {
      {"full", [](TrainingConfig&) {}},
      {"freeze_vision_modules", [](TrainingConfig& c) { c.freeze_vision_modules = true; }},
      {"freeze_aligner", [](TrainingConfig& c) { c.freeze_aligner = true; }},
      {"lora all-linear", [](TrainingConfig& c) { c.use_peft = true; c.lora_r = 4; }},
      {"lora q_proj v_proj", [](TrainingConfig& c) { c.use_peft = true; c.lora_target_modules = {"q_proj", "v_proj"}; }},
      {"lora vision qkv + mlp.down_proj",
       [](TrainingConfig& c) {
         c.use_peft = true;
         c.lora_r = 2;
         c.lora_target_modules = {"visual.blocks.1.attn.qkv", "mlp.down_proj"};
       }},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    SftConfig c;
    testing::base(c, world().root + "/plan_unused");
    k.set(c);
    const auto plan = from_plan(c);
    const auto trainer = from_trainer(c);
    EXPECT_EQ(plan, trainer);
    int64_t total = 0, trainable = 0;
    for (const auto& [name, p] : trainer) total += p.numel, trainable += p.trainable ? p.numel : 0;
    MemoryPlanInputs in;
    in.trainer = "sft";
    in.model = read_plan_model(c.model_name_or_path);
    in.trainability.use_peft = c.use_peft;
    in.trainability.lora_r = c.lora_r;
    in.trainability.lora_target_modules = c.lora_target_modules;
    in.trainability.freeze_vision_modules = c.freeze_vision_modules;
    in.trainability.freeze_aligner = c.freeze_aligner;
    const MemoryPlan mp = plan_memory(in);
    EXPECT_EQ(mp.total_parameters, total);
    EXPECT_EQ(mp.trainable_parameters, trainable);
  }
}

std::string run(const std::string& cmd, int* status) {
  const std::string log = world().root + "/dry_run.log";
  *status = std::system((cmd + " > " + log + " 2>&1").c_str());
  return read_file(log);
}

// --dry_run needs only the model's config.json: no data, no weights read, exit 0.
TEST(MemoryPlanModel, DryRunFromTheCommandLine) {
  const auto& w = world();
  int status = 0;
  const std::string out = run(std::string(REFRACT_BINARY) + " grpo --dry_run --model " + w.model +
                                  " --use_peft --lora_r 4 --num_generations 4 --per_device_train_batch_size 8"
                                  " --gradient_checkpointing --bf16",
                              &status);
  ASSERT_EQ(status, 0) << out;
  SftConfig c;
  testing::base(c, w.root + "/plan_unused");
  c.use_peft = true;
  c.lora_r = 4;
  int64_t total = 0, trainable = 0;
  for (const auto& [name, p] : from_plan(c)) total += p.numel, trainable += p.trainable ? p.numel : 0;
  auto grouped = [](int64_t n) {
    std::string s = std::to_string(n), o;
    for (size_t i = 0; i < s.size(); ++i) o += (i > 0 && (s.size() - i) % 3 == 0 ? "," : "") + std::string(1, s[i]);
    return o;
  };
  EXPECT_NE(out.find("parameters: " + grouped(total) + " total"), std::string::npos) << out;
  EXPECT_NE(out.find(grouped(trainable) + " trainable (LoRA r=4)"), std::string::npos) << out;
  EXPECT_NE(out.find("KV cache"), std::string::npos) << out;
  EXPECT_NE(out.find("peak per rank:"), std::string::npos) << out;
  // The flags reach the plan.
  EXPECT_NE(out.find("bf16 true; gradient_checkpointing true; optimizer_sharding false"), std::string::npos) << out;

  const std::string sft = run(std::string(REFRACT_BINARY) + " sft --dry_run --model " + w.model + " --max_length 300", &status);
  ASSERT_EQ(status, 0) << sft;
  EXPECT_NE(sft.find("sequence <= 300 tokens"), std::string::npos) << sft;
  EXPECT_EQ(sft.find("KV cache"), std::string::npos) << sft;
}

}  // namespace
}  // namespace refract::train
