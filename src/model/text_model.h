// Qwen2 decoder ("model.*"): embed_tokens, layers (GQA attention with q/k/v bias and no
// o_proj bias, SwiGLU MLP without biases), final norm; M-RoPE applied to q and k.
// ref: modeling_qwen2_5_vl.py@4.50 Qwen2_5_VLModel / Qwen2_5_VLDecoderLayer (eager attention)
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layers.h"

namespace refract::model {

class Qwen2AttentionImpl : public torch::nn::Module {
 public:
  Qwen2AttentionImpl(const Qwen2_5_VLConfig& c, int64_t layer_idx);
  // x [B, S, H]; cos/sin [B, S, head_dim]; mask: additive float [B, 1, S, L] (L = past + S).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache);
  int64_t layer_idx, num_heads, num_kv_heads, head_dim;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Qwen2Attention);

class Qwen2MlpImpl : public torch::nn::Module {
 public:
  explicit Qwen2MlpImpl(const Qwen2_5_VLConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2Mlp);

class Qwen2DecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen2DecoderLayerImpl(const Qwen2_5_VLConfig& c, int64_t layer_idx);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Qwen2Attention self_attn{nullptr};
  Qwen2Mlp mlp{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

class Qwen2ModelImpl : public torch::nn::Module {
 public:
  explicit Qwen2ModelImpl(const Qwen2_5_VLConfig& c);
  // inputs_embeds [B, S, H], position_ids [3, B, S], attention_mask [B, L] over past + S
  // (undefined = all ones). Returns the normed last hidden state [B, S, H].
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const torch::Tensor& position_ids,
                        const torch::Tensor& attention_mask, KVCache* cache);
  // M-RoPE cos/sin [B, S, head_dim] in the dtype of `like`.
  std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& position_ids,
                                                 const torch::Tensor& like) const;

  Qwen2_5_VLConfig config;
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  bool gradient_checkpointing = false;  // recompute each layer in backward when no KV cache is used
};
TORCH_MODULE(Qwen2Model);

}  // namespace refract::model
