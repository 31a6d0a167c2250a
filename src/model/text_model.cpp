#include "model/text_model.h"

#include <cmath>
#include <limits>

#include "common/check.h"
#include "model/attention.h"
#include "model/recompute.h"

namespace refract::model {

Qwen2AttentionImpl::Qwen2AttentionImpl(const Qwen2_5_VLConfig& c, int64_t idx)
    : layer_idx(idx), num_heads(c.num_attention_heads), num_kv_heads(c.num_key_value_heads), head_dim(c.head_dim()) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, num_heads * head_dim, true));
  k_proj = register_module("k_proj", Linear(c.hidden_size, num_kv_heads * head_dim, true));
  v_proj = register_module("v_proj", Linear(c.hidden_size, num_kv_heads * head_dim, true));
  // ref: Qwen2 attention: q/k/v have biases, o_proj does not
  o_proj = register_module("o_proj", Linear(num_heads * head_dim, c.hidden_size, false));
}

torch::Tensor Qwen2AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask, KVCache* cache) {
  const int64_t b = x.size(0), s = x.size(1);
  auto q = q_proj->forward(x).view({b, s, num_heads, head_dim}).transpose(1, 2);      // [B, h, S, hd]
  auto k = k_proj->forward(x).view({b, s, num_kv_heads, head_dim}).transpose(1, 2);   // [B, kv, S, hd]
  auto v = v_proj->forward(x).view({b, s, num_kv_heads, head_dim}).transpose(1, 2);
  auto c = cos.unsqueeze(1), sn = sin.unsqueeze(1);  // [B, 1, S, hd]
  q = q * c + rotate_half(q) * sn;
  k = k * c + rotate_half(k) * sn;
  if (cache != nullptr) {
    const bool prefill = cache->length() == 0;
    auto kv = cache->update(layer_idx, k, v);  // K stored after RoPE (ref: DynamicCache)
    // The prefill attends to its own k/v (keeps autograd intact); decode steps read the cache.
    if (!prefill) {
      k = kv.first;
      v = kv.second;
    }
  }
  auto out = attention(q, k, v, mask).transpose(1, 2).reshape({b, s, num_heads * head_dim});
  return o_proj->forward(out);
}

Qwen2MlpImpl::Qwen2MlpImpl(const Qwen2_5_VLConfig& c) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, false));
}

torch::Tensor Qwen2MlpImpl::forward(const torch::Tensor& x) {
  return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

Qwen2DecoderLayerImpl::Qwen2DecoderLayerImpl(const Qwen2_5_VLConfig& c, int64_t idx) {
  self_attn = register_module("self_attn", Qwen2Attention(c, idx));
  mlp = register_module("mlp", Qwen2Mlp(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor Qwen2DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                             const torch::Tensor& mask, KVCache* cache) {
  auto h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, mask, cache);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

Qwen2ModelImpl::Qwen2ModelImpl(const Qwen2_5_VLConfig& c) : config(c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Qwen2DecoderLayer(c, i));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

std::pair<torch::Tensor, torch::Tensor> Qwen2ModelImpl::rotary(const torch::Tensor& position_ids,
                                                               const torch::Tensor& like) const {
  const int64_t hd = config.head_dim();
  auto dev = position_ids.device();
  // ref: Qwen2_5_VLRotaryEmbedding (default rope): inv_freq = 1 / theta^(arange(0, hd, 2) / hd), fp32
  auto inv_freq = 1.0 / torch::pow(config.rope_theta,
                                   torch::arange(0, hd, 2, torch::TensorOptions().dtype(torch::kLong).device(dev))
                                           .to(torch::kFloat32) / static_cast<double>(hd));
  // freqs[a, b, s, j] = pos[a, b, s] * inv_freq[j]  -> [3, B, S, hd/2]
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq;
  auto emb = torch::cat({freqs, freqs}, -1);  // [3, B, S, hd]
  auto cos3 = emb.cos(), sin3 = emb.sin();
  // ref: apply_multimodal_rotary_pos_emb: mrope_section doubled ([t,h,w,t,h,w]); chunk i of
  // the head dimension takes its angle from axis i % 3 (T, H, W).
  std::vector<torch::Tensor> cparts, sparts;
  int64_t off = 0;
  for (int i = 0; i < 6; ++i) {
    const int64_t len = config.mrope_section[i % 3];
    cparts.push_back(cos3[i % 3].narrow(-1, off, len));
    sparts.push_back(sin3[i % 3].narrow(-1, off, len));
    off += len;
  }
  return {torch::cat(cparts, -1).to(like.scalar_type()), torch::cat(sparts, -1).to(like.scalar_type())};
}

torch::Tensor Qwen2ModelImpl::forward(const torch::Tensor& inputs_embeds, const torch::Tensor& position_ids,
                                      const torch::Tensor& attention_mask, KVCache* cache) {
  const int64_t b = inputs_embeds.size(0), s = inputs_embeds.size(1);
  const int64_t past = cache ? cache->length() : 0;
  const int64_t l = past + s;
  auto dev = inputs_embeds.device();
  auto [cos, sin] = rotary(position_ids, inputs_embeds);

  // Additive mask [B, 1, S, L] in fp32: causal over absolute cache positions + key padding.
  // ref: _update_causal_mask (eager): masked entries hold finfo.min, not -inf, so fully masked
  // padding rows stay finite.
  const float lowest = std::numeric_limits<float>::lowest();
  torch::Tensor mask;
  auto opts = torch::TensorOptions().device(dev);
  auto qpos = torch::arange(past, l, opts.dtype(torch::kLong)).unsqueeze(1);  // [S, 1]
  auto kpos = torch::arange(0, l, opts.dtype(torch::kLong)).unsqueeze(0);     // [1, L]
  auto allowed = (kpos <= qpos).unsqueeze(0).unsqueeze(0);                      // [1, 1, S, L]
  if (attention_mask.defined()) {
    REFRACT_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == b && attention_mask.size(1) == l)
        << "attention_mask must be [" << b << ", " << l << "] (past + new tokens), got " << attention_mask.sizes();
    allowed = allowed.logical_and(attention_mask.to(dev).ne(0).view({b, 1, 1, l}));
  }
  if (s > 1 || attention_mask.defined()) {
    mask = torch::zeros(allowed.sizes(), opts.dtype(torch::kFloat32)).masked_fill(allowed.logical_not(), lowest);
  }

  auto h = inputs_embeds;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto* layer = layers[i]->as<Qwen2DecoderLayerImpl>();
    if (gradient_checkpointing && cache == nullptr) {
      // By value: backward calls it after this function returned.
      h = checkpointed(*layer, [layer, cos, sin, mask](const torch::Tensor& x) { return layer->forward(x, cos, sin, mask, nullptr); }, h);
    } else {
      h = layer->forward(h, cos, sin, mask, cache);
    }
  }
  if (cache) cache->advance(s);
  return norm->forward(h);
}

}  // namespace refract::model
