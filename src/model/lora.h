// LoRA adapters on the model's Linear layers, PEFT-compatible on disk.
// ref: peft/tuners/lora (LoraConfig, LoraModel, save_pretrained: adapter_config.json +
// adapter_model.safetensors with keys base_model.model.<module path>.lora_{A,B}.weight)
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace refract::model {

class Qwen2_5_VLImpl;

struct LoraConfig {
  int64_t lora_r = 8;
  double lora_alpha = 16;
  double lora_dropout = 0.05;
  // "all-linear" = every Linear of the language model (lm_head excluded, as in PEFT);
  // otherwise module-name suffixes such as q_proj, v_proj. Vision / merger Linears are
  // only adapted when a target names them by a path containing "visual" (e.g.
  // "visual.blocks.0.attn.qkv"), when a target matches only vision Linears (Qwen2-VL's
  // "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"), or when lora_target_vision is set.
  std::vector<std::string> lora_target_modules = {"all-linear"};
  bool lora_target_vision = false;
};

// Attaches adapters; returns the module paths adapted (e.g. "model.layers.0.self_attn.q_proj").
// Parameters other than the adapters keep their requires_grad; call freeze_base() to train
// only the adapters.
std::vector<std::string> apply_lora(Qwen2_5_VLImpl& model, const LoraConfig& config);
void freeze_base(Qwen2_5_VLImpl& model);  // requires_grad only on lora_A / lora_B
void set_lora_enabled(Qwen2_5_VLImpl& model, bool enabled);
// Scoped "adapters disabled" (GRPO reference policy = base model).
class LoraDisabledGuard {
 public:
  explicit LoraDisabledGuard(Qwen2_5_VLImpl& model);
  ~LoraDisabledGuard();
 private:
  Qwen2_5_VLImpl& model_;
};
// W += scaling * B A for every adapted layer, then removes the adapters.
void merge_lora(Qwen2_5_VLImpl& model);
bool has_lora(Qwen2_5_VLImpl& model);

// adapter_config.json + adapter_model.safetensors (PEFT layout).
void save_lora(Qwen2_5_VLImpl& model, const LoraConfig& config, const std::string& dir);
// Reads adapter_config.json, attaches adapters to the named modules and loads their weights
// (keys with or without ".default", old or new transformers module paths).
LoraConfig load_lora(Qwen2_5_VLImpl& model, const std::string& dir);
// Copies an adapter's weights into the adapters already attached (same modules and ranks), in
// place, so optimizer state that refers to them stays valid (exact resume of LoRA training).
void load_lora_weights_into(Qwen2_5_VLImpl& model, const std::string& dir);

}  // namespace refract::model
