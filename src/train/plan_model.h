// The model as the memory plan (memory_plan.h) sees it: its shapes read from config.json, its
// parameters with the names and shapes refract's modules register, and which of them train
// under the training settings. No torch and no weights: `refract grpo|sft --dry_run` uses it.
//
// config.json is read by model/config.h (the one reader, torch-free); PlanModel is the plan's
// flat view of it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace refract::train {

struct PlanModel {
  std::string model_type = "qwen2_5_vl";  // qwen2_5_vl | qwen2_vl
  std::string torch_dtype = "bfloat16";   // dtype of the stored weights (config.json)
  // Decoder (Qwen2). Defaults: Qwen2.5-VL-3B-Instruct.
  int64_t vocab_size = 151936;
  int64_t hidden_size = 2048;             // H
  int64_t intermediate_size = 11008;      // I
  int64_t num_hidden_layers = 36;
  int64_t num_attention_heads = 16;
  int64_t num_key_value_heads = 2;
  bool tie_word_embeddings = true;        // true: no separate lm_head weight
  // Vision tower. Qwen2-VL names: embed_dim -> vision_hidden_size, int(embed_dim * mlp_ratio) ->
  // vision_intermediate_size, vision_config.hidden_size -> the merger's output (= hidden_size).
  int64_t vision_depth = 32;
  int64_t vision_hidden_size = 1280;      // D
  int64_t vision_intermediate_size = 3420;
  int64_t vision_num_heads = 16;
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t spatial_merge_size = 2;
  int64_t window_size = 112;              // Qwen2.5-VL windowed attention (pixels); 0 = none
  std::vector<int64_t> fullatt_block_indexes = {7, 15, 23, 31};

  bool qwen2_vl() const { return model_type == "qwen2_vl"; }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim(); }
  // Patches per side of one attention window (Qwen2.5-VL: 112 / 14 = 8).
  int64_t window_patches() const { return window_size > 0 ? window_size / patch_size : 0; }
};

// The plan's view of a parsed config.json (both families).
PlanModel plan_model_from(const model::Qwen2_5_VLConfig& c);
// Parses config.json text (model::parse_config: flat or text_config layout). Errors name `where`
// and the field.
PlanModel parse_plan_model(const std::string& json_text, const std::string& where = "config.json");
// Reads <dir>/config.json, or the file itself.
PlanModel read_plan_model(const std::string& path);

// The settings that decide which parameters train, as TrainSetup applies them
// (train/train_loop.cpp): LoRA adapters on the selected Linears (model/lora.cpp, PEFT's rules)
// with only the adapters training; otherwise everything but what freeze_* freezes.
struct Trainability {
  bool use_peft = false;
  int64_t lora_r = 8;
  std::vector<std::string> lora_target_modules = {"all-linear"};
  bool freeze_vision_modules = false;     // the whole visual tower, merger included
  bool freeze_aligner = false;            // visual.merger
};

struct PlanParameter {
  std::string name;                       // e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int64_t> shape;
  int64_t numel = 0;
  bool trainable = false;
  bool vision = false;                    // under visual.
};

// Every parameter the model registers (LoRA adapters included when use_peft), in module order.
std::vector<PlanParameter> plan_parameters(const PlanModel& m, const Trainability& t);
// Module paths of the Linears LoRA adapts (model/lora.cpp selected(): lm_head never; vision
// Linears only when a target names "visual"; "all-linear" or a "."-suffix match).
bool lora_selects(const std::string& module_path, const std::vector<std::string>& targets);
// An existing PEFT adapter (`adapter`): its rank and target_modules from adapter_config.json.
Trainability read_adapter_trainability(const std::string& adapter_dir, Trainability base);

}  // namespace refract::train
