#include "model/config.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"

#include <filesystem>

namespace refract::model {
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

// eos_token_id may be an int or a list ([151645, 151643]); keep the first.
void get_id(const json& j, const char* key, int64_t& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_array()) {
    REFRACT_CHECK(!it->empty() && (*it)[0].is_number_integer())
        << where << ": field '" << key << "' must be an integer or a non-empty list of integers";
    out = (*it)[0].get<int64_t>();
  } else {
    REFRACT_CHECK(it->is_number_integer()) << where << ": field '" << key << "' must be an integer";
    out = it->get<int64_t>();
  }
}

void parse_text_fields(const json& j, Qwen2_5_VLConfig& c, const std::string& where) {
  get_if(j, "vocab_size", c.vocab_size, where);
  get_if(j, "hidden_size", c.hidden_size, where);
  get_if(j, "intermediate_size", c.intermediate_size, where);
  get_if(j, "num_hidden_layers", c.num_hidden_layers, where);
  get_if(j, "num_attention_heads", c.num_attention_heads, where);
  get_if(j, "num_key_value_heads", c.num_key_value_heads, where);
  get_if(j, "rms_norm_eps", c.rms_norm_eps, where);
  get_if(j, "rope_theta", c.rope_theta, where);
  get_if(j, "max_position_embeddings", c.max_position_embeddings, where);
  get_if(j, "tie_word_embeddings", c.tie_word_embeddings, where);
  get_if(j, "hidden_act", c.hidden_act, where);
  get_if(j, "torch_dtype", c.torch_dtype, where);
  get_if(j, "dtype", c.torch_dtype, where);  // transformers v5 spelling
  get_id(j, "bos_token_id", c.bos_token_id, where);
  get_id(j, "eos_token_id", c.eos_token_id, where);
  get_id(j, "pad_token_id", c.pad_token_id, where);
  get_id(j, "vision_start_token_id", c.vision_start_token_id, where);
  get_id(j, "vision_end_token_id", c.vision_end_token_id, where);
  get_id(j, "vision_token_id", c.vision_token_id, where);
  get_id(j, "image_token_id", c.image_token_id, where);
  get_id(j, "video_token_id", c.video_token_id, where);
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && rs->is_object()) {
    // ref: transformers rewrites "mrope" to "default" on save (fixture tiny/config.json); both
    // mean the same M-RoPE with mrope_section.
    if (rs->contains("type")) c.rope_type = (*rs)["type"].get<std::string>();
    else if (rs->contains("rope_type")) c.rope_type = (*rs)["rope_type"].get<std::string>();
    get_if(*rs, "mrope_section", c.mrope_section, where + " rope_scaling");
  }
}

// ---- vision_config, per family ----------------------------------------------------------------

// Qwen2.5-VL: field names as in our struct.
void parse_vision_qwen2_5_vl(const json& v, Qwen2_5_VLVisionConfig& vc, const std::string& vw) {
  get_if(v, "depth", vc.depth, vw);
  get_if(v, "hidden_size", vc.hidden_size, vw);
  get_if(v, "intermediate_size", vc.intermediate_size, vw);
  get_if(v, "num_heads", vc.num_heads, vw);
  get_if(v, "in_channels", vc.in_channels, vw);
  get_if(v, "in_chans", vc.in_channels, vw);
  get_if(v, "out_hidden_size", vc.out_hidden_size, vw);
  get_if(v, "patch_size", vc.patch_size, vw);
  get_if(v, "spatial_merge_size", vc.spatial_merge_size, vw);
  get_if(v, "temporal_patch_size", vc.temporal_patch_size, vw);
  get_if(v, "window_size", vc.window_size, vw);
  get_if(v, "fullatt_block_indexes", vc.fullatt_block_indexes, vw);
  get_if(v, "tokens_per_second", vc.tokens_per_second, vw);
  get_if(v, "hidden_act", vc.hidden_act, vw);
}

// Qwen2-VL: embed_dim is the tower width, hidden_size the merger output (= the text width), the
// MLP width is int(embed_dim * mlp_ratio); no windows, no time scaling.
// ref: configuration_qwen2_vl.py@4.50 Qwen2VLVisionConfig (defaults = Qwen2-VL-7B's tower)
void parse_vision_qwen2_vl(const json& v, Qwen2_5_VLVisionConfig& vc, const std::string& vw) {
  vc.depth = 32;
  vc.hidden_size = 1280;
  vc.out_hidden_size = 3584;
  vc.mlp_ratio = 4.0;
  vc.num_heads = 16;
  vc.hidden_act = "quick_gelu";
  vc.window_size = 0;
  vc.fullatt_block_indexes.clear();
  vc.tokens_per_second = 0;
  get_if(v, "depth", vc.depth, vw);
  get_if(v, "embed_dim", vc.hidden_size, vw);
  get_if(v, "hidden_size", vc.out_hidden_size, vw);
  get_if(v, "mlp_ratio", vc.mlp_ratio, vw);
  get_if(v, "num_heads", vc.num_heads, vw);
  get_if(v, "in_channels", vc.in_channels, vw);
  get_if(v, "in_chans", vc.in_channels, vw);
  get_if(v, "patch_size", vc.patch_size, vw);
  get_if(v, "spatial_merge_size", vc.spatial_merge_size, vw);
  get_if(v, "temporal_patch_size", vc.temporal_patch_size, vw);
  get_if(v, "hidden_act", vc.hidden_act, vw);
  REFRACT_CHECK(vc.mlp_ratio > 0) << vw << ": mlp_ratio must be positive";
  // ref: VisionMlp(hidden_dim=int(embed_dim * mlp_ratio))
  vc.intermediate_size = static_cast<int64_t>(static_cast<double>(vc.hidden_size) * vc.mlp_ratio);
}

bool is_supported_vision_act(const std::string& a) {
  return a == "silu" || a == "quick_gelu" || a == "gelu" || a == "gelu_pytorch_tanh";
}

}  // namespace

const char* supported_model_types() { return "qwen2_5_vl | qwen2_vl"; }

Qwen2_5_VLConfig parse_config(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    REFRACT_FAIL() << where << ": invalid JSON: " << e.what();
  }
  REFRACT_CHECK(j.is_object()) << where << ": expected a JSON object";
  Qwen2_5_VLConfig c;
  // The family decides how vision_config reads; transformers' AutoConfig needs model_type too.
  auto mt = j.find("model_type");
  REFRACT_CHECK(mt != j.end() && mt->is_string())
      << where << ": no model_type (supported: " << supported_model_types() << ")";
  c.model_type = mt->get<std::string>();
  REFRACT_CHECK(c.model_type == kModelTypeQwen2_5_VL || c.model_type == kModelTypeQwen2VL)
      << where << ": model_type '" << c.model_type << "' is not supported (supported: " << supported_model_types()
      << ")";
  parse_text_fields(j, c, where);
  // transformers >= 4.52 may nest the decoder fields in text_config; they win when present.
  if (j.contains("text_config") && j["text_config"].is_object()) {
    parse_text_fields(j["text_config"], c, where + " text_config");
  }
  const json no_vision = json::object();
  const json& v = j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : no_vision;
  if (c.model_type == kModelTypeQwen2VL) {
    parse_vision_qwen2_vl(v, c.vision_config, where + " vision_config");
  } else {
    parse_vision_qwen2_5_vl(v, c.vision_config, where + " vision_config");
  }
  REFRACT_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0 &&
                c.hidden_size % c.num_attention_heads == 0)
      << where << ": hidden_size " << c.hidden_size << " is not a multiple of num_attention_heads "
      << c.num_attention_heads;
  REFRACT_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0)
      << where << ": num_attention_heads " << c.num_attention_heads
      << " is not a multiple of num_key_value_heads " << c.num_key_value_heads;
  REFRACT_CHECK(c.mrope_section.size() == 3)
      << where << ": rope_scaling.mrope_section must have 3 entries (t, h, w)";
  int64_t sum = c.mrope_section[0] + c.mrope_section[1] + c.mrope_section[2];
  REFRACT_CHECK(sum * 2 == c.head_dim())
      << where << ": rope_scaling.mrope_section sums to " << sum << " but head_dim/2 is "
      << c.head_dim() / 2;
  REFRACT_CHECK(c.rope_type == "mrope" || c.rope_type == "default")
      << where << ": rope_scaling.type '" << c.rope_type << "' is not supported (mrope | default)";
  REFRACT_CHECK(c.hidden_act == "silu") << where << ": hidden_act '" << c.hidden_act << "' is not supported";
  const auto& vc = c.vision_config;
  REFRACT_CHECK(vc.num_heads > 0 && vc.hidden_size % vc.num_heads == 0)
      << where << ": vision_config.hidden_size is not a multiple of vision_config.num_heads";
  REFRACT_CHECK(vc.head_dim() % 4 == 0) << where << ": vision head_dim must be a multiple of 4";
  REFRACT_CHECK(is_supported_vision_act(vc.hidden_act))
      << where << ": vision_config.hidden_act '" << vc.hidden_act
      << "' is not supported (silu | quick_gelu | gelu | gelu_pytorch_tanh)";
  REFRACT_CHECK(vc.out_hidden_size == c.hidden_size)
      << where << ": vision_config." << (c.model_type == kModelTypeQwen2VL ? "hidden_size " : "out_hidden_size ")
      << vc.out_hidden_size << " differs from hidden_size " << c.hidden_size;
  if (c.model_type == kModelTypeQwen2_5_VL) {
    int64_t unit = vc.spatial_merge_size * vc.patch_size;
    REFRACT_CHECK(vc.window_size > 0 && vc.window_size % unit == 0)
        << where << ": vision_config.window_size must be a positive multiple of spatial_merge_size*patch_size";
    for (int64_t b : vc.fullatt_block_indexes) {
      REFRACT_CHECK(b >= 0 && b < vc.depth)
          << where << ": vision_config.fullatt_block_indexes has " << b << " outside [0, depth)";
    }
  }
  return c;
}

Qwen2_5_VLConfig load_config(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  return parse_config(read_file(file), file);
}

std::string config_to_json(const Qwen2_5_VLConfig& c) {
  const auto& v = c.vision_config;
  const bool qwen2_vl = c.model_type == kModelTypeQwen2VL;
  json vj;
  if (qwen2_vl) {
    // ref: Qwen2VLVisionConfig names; mlp_ratio as the checkpoints write it (4, not 4.0)
    json ratio = v.mlp_ratio == static_cast<double>(static_cast<int64_t>(v.mlp_ratio))
                     ? json(static_cast<int64_t>(v.mlp_ratio))
                     : json(v.mlp_ratio);
    vj = {{"depth", v.depth},
          {"embed_dim", v.hidden_size},
          {"hidden_size", v.out_hidden_size},
          {"hidden_act", v.hidden_act},
          {"mlp_ratio", ratio},
          {"num_heads", v.num_heads},
          {"in_channels", v.in_channels},
          {"patch_size", v.patch_size},
          {"spatial_merge_size", v.spatial_merge_size},
          {"temporal_patch_size", v.temporal_patch_size},
          {"model_type", c.model_type}};
  } else {
    vj = {{"depth", v.depth},
          {"hidden_size", v.hidden_size},
          {"intermediate_size", v.intermediate_size},
          {"num_heads", v.num_heads},
          {"in_channels", v.in_channels},
          {"out_hidden_size", v.out_hidden_size},
          {"patch_size", v.patch_size},
          {"spatial_merge_size", v.spatial_merge_size},
          {"temporal_patch_size", v.temporal_patch_size},
          {"window_size", v.window_size},
          {"fullatt_block_indexes", v.fullatt_block_indexes},
          {"tokens_per_second", v.tokens_per_second},
          {"hidden_act", v.hidden_act},
          {"model_type", c.model_type}};
  }
  const char* arch = qwen2_vl ? "Qwen2VLForConditionalGeneration" : "Qwen2_5_VLForConditionalGeneration";
  json j = {{"architectures", {arch}},
            {"model_type", c.model_type},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", {{"type", c.rope_type}, {"mrope_section", c.mrope_section}}},
            {"max_position_embeddings", c.max_position_embeddings},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"hidden_act", c.hidden_act},
            {"torch_dtype", c.torch_dtype},
            {"attention_dropout", 0.0},
            {"use_sliding_window", false},
            {"sliding_window", 32768},
            {"max_window_layers", c.num_hidden_layers},
            {"use_cache", true},
            {"bos_token_id", c.bos_token_id},
            {"eos_token_id", c.eos_token_id},
            {"vision_start_token_id", c.vision_start_token_id},
            {"vision_end_token_id", c.vision_end_token_id},
            {"vision_token_id", c.vision_token_id},
            {"image_token_id", c.image_token_id},
            {"video_token_id", c.video_token_id},
            {"vision_config", vj}};
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  return j.dump(2) + "\n";
}

}  // namespace refract::model
