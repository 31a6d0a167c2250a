#include "model/init.h"

#include <cmath>

#include "common/check.h"
#include "model/qwen2_5_vl.h"

namespace refract::model {

Qwen2_5_VLConfig preset_config(const std::string& preset, const std::string& model_type) {
  REFRACT_CHECK(model_type == kModelTypeQwen2_5_VL || model_type == kModelTypeQwen2VL)
      << "model_type '" << model_type << "' is not supported (supported: " << supported_model_types() << ")";
  Qwen2_5_VLConfig c;
  c.model_type = model_type;
  auto& v = c.vision_config;
  // Both presets untie lm_head: with N(0, 1) embeddings a tied head would start with logits of
  // std sqrt(hidden_size), i.e. near-deterministic sampling; a fan-in lm_head gives std ~1.
  c.tie_word_embeddings = false;
  c.torch_dtype = "float32";
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.rope_type = "mrope";
  c.max_position_embeddings = 32768;
  v.patch_size = 14;
  v.temporal_patch_size = 2;
  v.spatial_merge_size = 2;
  v.window_size = 112;
  v.tokens_per_second = 2;
  if (preset == "tiny") {
    v.depth = 2;
    v.hidden_size = 128;
    v.num_heads = 4;
    v.intermediate_size = 256;
    v.fullatt_block_indexes = {1};
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.mrope_section = {8, 12, 12};  // head_dim 64: the 3B's [16, 24, 24] proportions
  } else if (preset == "small") {
    v.depth = 8;
    v.hidden_size = 384;
    v.num_heads = 6;
    v.intermediate_size = 1024;
    v.fullatt_block_indexes = {3, 7};
    c.hidden_size = 768;
    c.intermediate_size = 2048;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.num_key_value_heads = 4;
    c.mrope_section = {8, 12, 12};
  } else {
    REFRACT_FAIL() << "preset '" << preset << "' is unknown (tiny | small)";
  }
  v.out_hidden_size = c.hidden_size;
  if (model_type == kModelTypeQwen2VL) {
    // Qwen2-VL's tower: fc1/fc2 with quick_gelu, width from mlp_ratio, no windows.
    v.hidden_act = "quick_gelu";
    v.mlp_ratio = preset == "tiny" ? 2.0 : 4.0;
    v.intermediate_size = static_cast<int64_t>(static_cast<double>(v.hidden_size) * v.mlp_ratio);
    v.window_size = 0;
    v.fullatt_block_indexes.clear();
    v.tokens_per_second = 0;
  }
  return c;
}

void init_weights(Qwen2_5_VLImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Draw on the CPU in fp32 (same numbers on every device / dtype), then copy.
  auto normal = [&](torch::Tensor& p, double std) {
    auto t = torch::empty(p.sizes(), torch::kFloat32);
    t.normal_(0.0, std, gen);
    p.copy_(t);
  };
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    auto ends = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (name.find(".lora_") != std::string::npos) continue;
    if (ends(".bias")) {
      p.zero_();
    } else if (p.dim() == 1) {  // RMSNorm / LayerNorm weights
      p.fill_(1.0);
    } else if (ends("embed_tokens.weight")) {
      normal(p, 1.0);
    } else {
      const int64_t fan_in = p.numel() / p.size(0);  // Linear [out, in]; patch embed [D, C, t, p, p]
      double std = 1.0 / std::sqrt(static_cast<double>(fan_in));
      // Residual-branch outputs start at half scale so the residual stream stays O(1) at init.
      const bool residual_out = ends("self_attn.o_proj.weight") || ends("mlp.down_proj.weight") ||
                                ends("attn.proj.weight") || ends("mlp.fc2.weight");
      if (residual_out) std *= 0.5;
      normal(p, std);
    }
  }
}

}  // namespace refract::model
