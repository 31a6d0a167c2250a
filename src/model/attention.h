// The attention kernel of every model here (decoder and vision tower): softmax(q k^T / sqrt(d) +
// mask) v with the softmax in fp32, as the reference's eager attention. With libtorch >= 2 it
// goes through at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA, fused
// kernels on CPU); with libtorch 1.13 it is matmul + softmax + matmul.
#pragma once
#include <torch/torch.h>

namespace refract::model {

// q [B, H, S, D]; k, v [B, KV, L, D] with H a multiple of KV (grouped-query attention: query head
// h reads kv head h / (H / KV), ref: repeat_kv). mask: undefined, or additive fp32 [B or 1, 1, S, L]
// whose masked entries hold the dtype's lowest finite value (never -inf, so fully masked padding
// rows stay finite). Returns [B, H, S, D] in q's dtype.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask);

// true when attention() uses at::scaled_dot_product_attention (libtorch >= 2).
bool attention_uses_sdpa();

}  // namespace refract::model
