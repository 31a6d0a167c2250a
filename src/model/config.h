// Hyper-parameters of the Qwen2-VL model family, parsed from a Hugging Face config.json (no
// torch here). config.json's `model_type` names the family:
//   qwen2_5_vl  Qwen2.5-VL (RMSNorm + gated SiLU vision MLP, windowed vision attention)
//   qwen2_vl    Qwen2-VL (LayerNorm + fc1/fc2 quick_gelu vision MLP, full vision attention)
// The text decoder, M-RoPE and the image-token scatter are the same for both.
// Field names are the Qwen2.5-VL config.json keys; defaults are the Qwen2.5-VL-3B-Instruct values.
// ref: transformers/models/qwen2_5_vl/configuration_qwen2_5_vl.py@4.50,
//      transformers/models/qwen2_vl/configuration_qwen2_vl.py@4.50
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::model {

// Model families (config.json model_type).
inline constexpr const char* kModelTypeQwen2_5_VL = "qwen2_5_vl";
inline constexpr const char* kModelTypeQwen2VL = "qwen2_vl";
// "qwen2_5_vl | qwen2_vl": the supported model_type values, for error messages and help.
const char* supported_model_types();

// The vision tower's settings. Qwen2-VL's config.json spells three of them differently; the
// parser maps them here (config.cpp): embed_dim -> hidden_size, hidden_size -> out_hidden_size,
// embed_dim * mlp_ratio -> intermediate_size.
struct Qwen2_5_VLVisionConfig {
  int64_t depth = 32;                 // number of vision blocks
  int64_t hidden_size = 1280;         // D (Qwen2-VL: embed_dim)
  int64_t intermediate_size = 3420;   // vision MLP width (Qwen2-VL: int(embed_dim * mlp_ratio))
  double mlp_ratio = 4.0;             // Qwen2-VL only (written back to its config.json)
  int64_t num_heads = 16;             // head_dim = hidden_size / num_heads (80)
  int64_t in_channels = 3;
  int64_t out_hidden_size = 2048;     // merger output = text hidden_size (Qwen2-VL: hidden_size)
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  // Qwen2.5-VL only: windowed attention and video time scaling.
  int64_t window_size = 112;          // pixels; 112 / 2 / 14 = 4 merged units per window side
  std::vector<int64_t> fullatt_block_indexes = {7, 15, 23, 31};
  int64_t tokens_per_second = 2;      // video temporal positions (checkpoints: 2; class: 4); an int in HF
  std::string hidden_act = "silu";    // Qwen2-VL: quick_gelu

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Columns of one pixel_values row: C * temporal_patch * patch * patch (1176).
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

// The whole model's settings (both families; the name is the first family's).
struct Qwen2_5_VLConfig {
  std::string model_type = kModelTypeQwen2_5_VL;  // config.json model_type: the family

  // Text (Qwen2 decoder).
  int64_t vocab_size = 151936;
  int64_t hidden_size = 2048;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 36;
  int64_t num_attention_heads = 16;
  int64_t num_key_value_heads = 2;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1000000.0;
  std::vector<int64_t> mrope_section = {16, 24, 24};  // rope_scaling.mrope_section (sums to head_dim/2)
  std::string rope_type = "mrope";  // rope_scaling.type: "mrope" or "default" (same maths)
  int64_t max_position_embeddings = 128000;
  bool tie_word_embeddings = true;
  std::string hidden_act = "silu";
  std::string torch_dtype = "bfloat16";  // dtype of the stored weights

  // Special ids: always read from config.json (fixtures remap them; never hard-code 151655).
  int64_t bos_token_id = 151643;
  int64_t eos_token_id = 151645;
  int64_t pad_token_id = -1;  // -1: absent
  int64_t vision_start_token_id = 151652;
  int64_t vision_end_token_id = 151653;
  int64_t vision_token_id = 151654;
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;

  Qwen2_5_VLVisionConfig vision_config;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Parses config.json text (flat legacy layout, or the newer one with "text_config").
// model_type must be one of supported_model_types().
// Unknown keys are ignored; inconsistent values (heads not dividing hidden, mrope_section
// not summing to head_dim/2, ...) are errors naming the field. `where` names the source.
Qwen2_5_VLConfig parse_config(const std::string& json_text, const std::string& where = "config.json");
// Reads <dir>/config.json, or the file itself when `path` is a file.
Qwen2_5_VLConfig load_config(const std::string& path);
// config.json text in the HF flat layout (what transformers 4.50 writes), in the family's
// spelling (Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration).
std::string config_to_json(const Qwen2_5_VLConfig& c);

}  // namespace refract::model
