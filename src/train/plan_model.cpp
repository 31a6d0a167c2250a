#include "train/plan_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"

namespace refract::train {
namespace {

using nlohmann::json;

template <typename T>
void get_if(const json& j, const char* key, T& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const std::exception& e) {
    REFRACT_FAIL() << where << ": field '" << key << "' has the wrong type: " << e.what();
  }
}

void parse_text(const json& j, PlanModel& m, const std::string& where) {
  get_if(j, "vocab_size", m.vocab_size, where);
  get_if(j, "hidden_size", m.hidden_size, where);
  get_if(j, "intermediate_size", m.intermediate_size, where);
  get_if(j, "num_hidden_layers", m.num_hidden_layers, where);
  get_if(j, "num_attention_heads", m.num_attention_heads, where);
  get_if(j, "num_key_value_heads", m.num_key_value_heads, where);
  get_if(j, "tie_word_embeddings", m.tie_word_embeddings, where);
  get_if(j, "torch_dtype", m.torch_dtype, where);
  get_if(j, "dtype", m.torch_dtype, where);  // transformers v5 spelling
}

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

PlanModel parse_plan_model(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    REFRACT_FAIL() << where << ": invalid JSON: " << e.what();
  }
  REFRACT_CHECK(j.is_object()) << where << ": expected a JSON object";
  PlanModel m;
  get_if(j, "model_type", m.model_type, where);
  REFRACT_CHECK(m.model_type == "qwen2_5_vl" || m.model_type == "qwen2_vl")
      << where << ": model_type '" << m.model_type << "' is not one the memory plan knows (qwen2_5_vl | qwen2_vl)";
  parse_text(j, m, where);
  if (j.contains("text_config") && j["text_config"].is_object()) parse_text(j["text_config"], m, where + " text_config");
  const json no_vision = json::object();
  const json& v = j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : no_vision;
  const std::string vw = where + " vision_config";
  get_if(v, "depth", m.vision_depth, vw);
  get_if(v, "num_heads", m.vision_num_heads, vw);
  get_if(v, "in_channels", m.in_channels, vw);
  get_if(v, "in_chans", m.in_channels, vw);
  get_if(v, "patch_size", m.patch_size, vw);
  get_if(v, "temporal_patch_size", m.temporal_patch_size, vw);
  get_if(v, "spatial_merge_size", m.spatial_merge_size, vw);
  if (m.qwen2_vl()) {
    // ref: Qwen2VLVisionConfig: embed_dim is the tower width, hidden_size the merger's output,
    // the MLP width int(embed_dim * mlp_ratio); every block attends over the whole image.
    m.vision_hidden_size = 1280;
    double mlp_ratio = 4.0;
    get_if(v, "embed_dim", m.vision_hidden_size, vw);
    get_if(v, "mlp_ratio", mlp_ratio, vw);
    REFRACT_CHECK(mlp_ratio > 0) << vw << ": mlp_ratio must be positive";
    m.vision_intermediate_size = static_cast<int64_t>(static_cast<double>(m.vision_hidden_size) * mlp_ratio);
    m.window_size = 0;
    m.fullatt_block_indexes.clear();
  } else {
    get_if(v, "hidden_size", m.vision_hidden_size, vw);
    get_if(v, "intermediate_size", m.vision_intermediate_size, vw);
    get_if(v, "window_size", m.window_size, vw);
    get_if(v, "fullatt_block_indexes", m.fullatt_block_indexes, vw);
  }
  auto positive = [&](int64_t x, const char* field) {
    REFRACT_CHECK(x > 0) << where << ": " << field << " must be positive, got " << x;
  };
  positive(m.vocab_size, "vocab_size");
  positive(m.hidden_size, "hidden_size");
  positive(m.intermediate_size, "intermediate_size");
  positive(m.num_hidden_layers, "num_hidden_layers");
  positive(m.num_attention_heads, "num_attention_heads");
  positive(m.num_key_value_heads, "num_key_value_heads");
  positive(m.vision_depth, "vision_config.depth");
  positive(m.vision_hidden_size, "vision_config hidden size");
  positive(m.vision_num_heads, "vision_config.num_heads");
  positive(m.patch_size, "vision_config.patch_size");
  positive(m.spatial_merge_size, "vision_config.spatial_merge_size");
  REFRACT_CHECK(m.hidden_size % m.num_attention_heads == 0)
      << where << ": hidden_size " << m.hidden_size << " is not a multiple of num_attention_heads "
      << m.num_attention_heads;
  REFRACT_CHECK(m.num_attention_heads % m.num_key_value_heads == 0)
      << where << ": num_attention_heads " << m.num_attention_heads << " is not a multiple of num_key_value_heads "
      << m.num_key_value_heads;
  return m;
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
  get_if(j, "r", base.lora_r, file);
  if (j.contains("target_modules") && j["target_modules"].is_array())
    base.lora_target_modules = j["target_modules"].get<std::vector<std::string>>();
  else if (j.contains("target_modules") && j["target_modules"].is_string())
    base.lora_target_modules = {j["target_modules"].get<std::string>()};
  return base;
}

}  // namespace refract::train
