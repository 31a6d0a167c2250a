#include "train/plan_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"

namespace refract::train {
namespace {

using nlohmann::json;

std::vector<int64_t> shape_of(std::initializer_list<int64_t> s) { return std::vector<int64_t>(s); }

// Collects parameters in module order; a Linear adds weight (+ bias) and, when LoRA selects
// it, lora_A [r, in] and lora_B [out, r].
struct Collector {
  const Trainability& t;
  std::vector<PlanParameter> out;

  void add(const std::string& name, std::vector<int64_t> shape) {
    PlanParameter p;
    p.name = name;
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    p.vision = name.rfind("visual.", 0) == 0;
    out.push_back(std::move(p));
  }
  void linear(const std::string& path, int64_t in, int64_t out_features, bool bias) {
    add(path + ".weight", shape_of({out_features, in}));
    if (bias) add(path + ".bias", shape_of({out_features}));
    if (t.use_peft && lora_selects(path, t.lora_target_modules)) {
      add(path + ".lora_A.weight", shape_of({t.lora_r, in}));
      add(path + ".lora_B.weight", shape_of({out_features, t.lora_r}));
    }
  }
  void norm(const std::string& path, int64_t d, bool bias) {  // RMSNorm, or LayerNorm with bias
    add(path + ".weight", shape_of({d}));
    if (bias) add(path + ".bias", shape_of({d}));
  }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PlanModel plan_model_from(const model::Qwen2_5_VLConfig& c) {
  const model::Qwen2_5_VLVisionConfig& v = c.vision_config;
  PlanModel m;
  m.model_type = c.model_type;
  m.torch_dtype = c.torch_dtype;
  m.vocab_size = c.vocab_size;
  m.hidden_size = c.hidden_size;
  m.intermediate_size = c.intermediate_size;
  m.num_hidden_layers = c.num_hidden_layers;
  m.num_attention_heads = c.num_attention_heads;
  m.num_key_value_heads = c.num_key_value_heads;
  m.tie_word_embeddings = c.tie_word_embeddings;
  m.vision_depth = v.depth;
  m.vision_hidden_size = v.hidden_size;
  m.vision_intermediate_size = v.intermediate_size;
  m.vision_num_heads = v.num_heads;
  m.in_channels = v.in_channels;
  m.patch_size = v.patch_size;
  m.temporal_patch_size = v.temporal_patch_size;
  m.spatial_merge_size = v.spatial_merge_size;
  // Qwen2-VL attends over the whole image in every block (no windows).
  m.window_size = m.qwen2_vl() ? 0 : v.window_size;
  m.fullatt_block_indexes = m.qwen2_vl() ? std::vector<int64_t>{} : v.fullatt_block_indexes;
  return m;
}

PlanModel parse_plan_model(const std::string& json_text, const std::string& where) {
  return plan_model_from(model::parse_config(json_text, where));
}

PlanModel read_plan_model(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  REFRACT_CHECK(fs::exists(file)) << "model_name_or_path: " << file << " does not exist";
  return parse_plan_model(read_file(file), file);
}

bool lora_selects(const std::string& path, const std::vector<std::string>& targets) {
  if (path == "lm_head") return false;  // ref: peft "all-linear" excludes the output layer
  const bool vision = path.rfind("visual.", 0) == 0;
  for (const auto& t : targets) {
    if (vision && t.find("visual") == std::string::npos) continue;
    if (t == "all-linear") return true;
    // ref: peft check_target_module_exists: the exact name or a "." + suffix match
    if (path == t || (path.size() > t.size() && ends_with(path, t) && path[path.size() - t.size() - 1] == '.'))
      return true;
  }
  return false;
}

std::vector<PlanParameter> plan_parameters(const PlanModel& m, const Trainability& t) {
  Collector c{t, {}};
  // ---- vision tower (module "visual") ----
  const int64_t d = m.vision_hidden_size, vi = m.vision_intermediate_size;
  // Conv3d patch embedding without bias: [D, C, t, p, p].
  c.add("visual.patch_embed.proj.weight",
        shape_of({d, m.in_channels, m.temporal_patch_size, m.patch_size, m.patch_size}));
  for (int64_t b = 0; b < m.vision_depth; ++b) {
    const std::string p = "visual.blocks." + std::to_string(b);
    // Qwen2-VL: LayerNorm (weight + bias); Qwen2.5-VL: RMSNorm.
    c.norm(p + ".norm1", d, m.qwen2_vl());
    c.norm(p + ".norm2", d, m.qwen2_vl());
    c.linear(p + ".attn.qkv", d, 3 * d, true);
    c.linear(p + ".attn.proj", d, d, true);
    if (m.qwen2_vl()) {
      c.linear(p + ".mlp.fc1", d, vi, true);
      c.linear(p + ".mlp.fc2", vi, d, true);
    } else {
      c.linear(p + ".mlp.gate_proj", d, vi, true);
      c.linear(p + ".mlp.up_proj", d, vi, true);
      c.linear(p + ".mlp.down_proj", vi, d, true);
    }
  }
  // Merger: norm over D, then an MLP on spatial_merge_size^2 patches concatenated.
  const int64_t merged = d * m.spatial_merge_size * m.spatial_merge_size;
  c.norm("visual.merger.ln_q", d, m.qwen2_vl());
  c.linear("visual.merger.mlp.0", merged, merged, true);
  c.linear("visual.merger.mlp.2", merged, m.hidden_size, true);
  // ---- decoder (module "model") ----
  const int64_t h = m.hidden_size, kv = m.kv_dim();
  c.add("model.embed_tokens.weight", shape_of({m.vocab_size, h}));
  for (int64_t l = 0; l < m.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    // ref: Qwen2 attention: q/k/v have biases, o_proj does not.
    c.linear(p + ".self_attn.q_proj", h, h, true);
    c.linear(p + ".self_attn.k_proj", h, kv, true);
    c.linear(p + ".self_attn.v_proj", h, kv, true);
    c.linear(p + ".self_attn.o_proj", h, h, false);
    c.linear(p + ".mlp.gate_proj", h, m.intermediate_size, false);
    c.linear(p + ".mlp.up_proj", h, m.intermediate_size, false);
    c.linear(p + ".mlp.down_proj", m.intermediate_size, h, false);
    c.norm(p + ".input_layernorm", h, false);
    c.norm(p + ".post_attention_layernorm", h, false);
  }
  c.norm("model.norm", h, false);
  if (!m.tie_word_embeddings) c.linear("lm_head", h, m.vocab_size, false);

  // Trainability, in TrainSetup's order: freeze_vision_modules / freeze_aligner, then with LoRA
  // only the adapters train (freeze_base).
  for (auto& p : c.out) {
    const bool adapter = p.name.find(".lora_A.") != std::string::npos || p.name.find(".lora_B.") != std::string::npos;
    if (t.use_peft) {
      p.trainable = adapter;
      continue;
    }
    p.trainable = true;
    if (t.freeze_vision_modules && p.vision) p.trainable = false;
    if (t.freeze_aligner && p.name.rfind("visual.merger.", 0) == 0) p.trainable = false;
  }
  return c.out;
}

Trainability read_adapter_trainability(const std::string& adapter_dir, Trainability base) {
  namespace fs = std::filesystem;
  const std::string file = (fs::path(adapter_dir) / "adapter_config.json").string();
  REFRACT_CHECK(fs::exists(file)) << "adapter: " << file << " does not exist";
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const std::exception& e) {
    REFRACT_FAIL() << file << ": invalid JSON: " << e.what();
  }
  base.use_peft = true;
  if (j.contains("r")) {
    REFRACT_CHECK(j["r"].is_number_integer()) << file << ": field 'r' must be an integer";
    base.lora_r = j["r"].get<int64_t>();
  }
  if (j.contains("target_modules") && j["target_modules"].is_array())
    base.lora_target_modules = j["target_modules"].get<std::vector<std::string>>();
  else if (j.contains("target_modules") && j["target_modules"].is_string())
    base.lora_target_modules = {j["target_modules"].get<std::string>()};
  return base;
}

}  // namespace refract::train
