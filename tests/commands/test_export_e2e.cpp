// `refract export` end to end: base + a random non-zero LoRA adapter (PEFT layout) merged by the
// CLI must give the logits of the unmerged base + adapter forward (the identity
// (W + s*B*A) x == W x + s*B*(A x)), with the tokenizer files carried over.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "io/torch_tensors.h"
#include "model/lora.h"
#include "model/qwen2_5_vl.h"
#include "../serve/test_util.h"
#include "../serve/tiny_model.h"
#include "test_device.h"

namespace refract::serve {
namespace {
namespace fs = std::filesystem;
using namespace testing;

int run_refract(const std::string& args, const std::string& log) {
  return std::system((std::string("'") + REFRACT_BINARY + "' " + refract::testing::with_test_device(args) + " > '" + log + "' 2>&1").c_str());
}

torch::Tensor logits_of(model::Qwen2_5_VLImpl& m, std::map<std::string, torch::Tensor>& e) {
  torch::NoGradGuard g;
  return m.forward(e["input_ids"], e["attention_mask"], e["pixel_values"], e["image_grid_thw"]).logits;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

TEST(ServeExport, MergedExportMatchesBasePlusAdapterForward) {
  torch::set_num_threads(1);
  TempDir dir("export");
  const std::string base_dir = dir.file("base"), adapter_dir = dir.file("adapter"), out_dir = dir.file("merged");
  write_tiny_serving_model(base_dir);  // the fixture + tokenizer files to be carried over
  auto e = io::load_tensors(std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl/C/expected.safetensors");

  // A random adapter on every language Linear and the vision tower; B non-zero (PEFT inits it
  // to zero, which would make the merge a no-op and the test vacuous).
  auto m = model::load_pretrained(base_dir, torch::kCPU, "float32");
  m->eval();
  const torch::Tensor base_logits = logits_of(*m, e);
  model::LoraConfig cfg;
  cfg.lora_r = 4;
  cfg.lora_alpha = 8;
  cfg.lora_dropout = 0.0;
  cfg.lora_target_vision = true;
  const auto adapted = model::apply_lora(*m, cfg);
  ASSERT_GT(adapted.size(), 14u);
  {
    torch::NoGradGuard g;
    torch::manual_seed(11);
    for (auto& item : m->named_parameters()) {
      if (item.key().find(".lora_B.") != std::string::npos) item.value().normal_(0.0, 0.05);
    }
  }
  m->eval();
  model::save_lora(*m, cfg, adapter_dir);
  const torch::Tensor adapter_logits = logits_of(*m, e);
  ASSERT_GT(max_abs_diff(adapter_logits, base_logits), 1e-2) << "the adapter must change the outputs";

  ASSERT_EQ(run_refract("export --model '" + base_dir + "' --adapter '" + adapter_dir + "' --output '" + out_dir +
                            "' --threads 1",
                        dir.file("export.log")),
            0)
      << read_file(dir.file("export.log"));
  auto merged = model::load_pretrained(out_dir, torch::kCPU, "auto");  // strict: no adapter tensors left
  EXPECT_EQ(merged->dtype(), torch::kFloat32);  // auto = the base's dtype
  merged->eval();
  const double diff = max_abs_diff(logits_of(*merged, e), adapter_logits);
  std::cout << "max |merged - (base + adapter)| logits = " << diff << "\n";
  EXPECT_LT(diff, 1e-4);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    ASSERT_TRUE(fs::exists(fs::path(out_dir) / f)) << f;
    EXPECT_EQ(read_file((fs::path(out_dir) / f).string()), read_file((fs::path(base_dir) / f).string())) << f;
  }
}

TEST(ServeExport, TorchDtypeAndErrors) {
  TempDir dir("export_dtype");
  const std::string base_dir = dir.file("base"), adapter_dir = dir.file("adapter"), out_dir = dir.file("bf16");
  write_tiny_serving_model(base_dir);
  {
    auto m = model::load_pretrained(base_dir, torch::kCPU, "float32");
    model::LoraConfig cfg;
    cfg.lora_target_modules = {"q_proj", "v_proj"};
    model::apply_lora(*m, cfg);
    model::save_lora(*m, cfg, adapter_dir);
  }
  ASSERT_EQ(run_refract("export --model '" + base_dir + "' --adapter '" + adapter_dir + "' --output '" + out_dir +
                            "' --torch_dtype bfloat16 --threads 1",
                        dir.file("a.log")),
            0)
      << read_file(dir.file("a.log"));
  const auto config = nlohmann::json::parse(read_file(out_dir + "/config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(model::load_pretrained(out_dir, torch::kCPU, "auto")->dtype(), torch::kBFloat16);

  // No adapter_config.json: a clear error, nothing written.
  EXPECT_NE(run_refract("export --model '" + base_dir + "' --adapter '" + base_dir + "' --output '" +
                            dir.file("none") + "'",
                        dir.file("b.log")),
            0);
  EXPECT_NE(read_file(dir.file("b.log")).find("adapter_config.json"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("none")));
  EXPECT_NE(run_refract("export --model '" + base_dir + "' --adapter '" + adapter_dir + "' --output '" +
                            dir.file("x") + "' --torch_dtype int8",
                        dir.file("c.log")),
            0);
}

}  // namespace
}  // namespace refract::serve
