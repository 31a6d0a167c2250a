#include "model/attention.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

#if TORCH_VERSION_MAJOR >= 2
#define REFRACT_HAVE_SDPA 1
#endif

namespace refract::model {

bool attention_uses_sdpa() {
#ifdef REFRACT_HAVE_SDPA
  return true;
#else
  return false;
#endif
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask) {
  const int64_t h = q.size(1), kv = k.size(1);
#ifdef REFRACT_HAVE_SDPA
  // SDPA wants the mask in the query's dtype; the fp32 lowest value would round to -inf in bf16,
  // so clamp to the target dtype's lowest finite value first (what HF's finfo(dtype).min does).
  c10::optional<at::Tensor> m;
  if (mask.defined()) {
    if (mask.scalar_type() == q.scalar_type()) {
      m = mask;
    } else {
      const double lowest =
          q.scalar_type() == torch::kBFloat16 ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
          : q.scalar_type() == torch::kHalf   ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                                              : std::numeric_limits<double>::lowest();
      m = mask.clamp_min(lowest).to(q.scalar_type());
    }
  }
  return at::scaled_dot_product_attention(q, k, v, m, /*dropout_p=*/0.0, /*is_causal=*/false,
                                          /*scale=*/c10::nullopt, /*enable_gqa=*/h != kv);
#else
  // The rep query heads of a kv head are stacked along the query axis, [B, KV, rep*S, D] against
  // [B, KV, L, D], instead of copying K/V rep times (cache views stay views: a decode step copies
  // nothing).
  const int64_t b = q.size(0), s = q.size(2), d = q.size(3), l = k.size(2);
  const int64_t rep = h / kv;
  auto qg = q.reshape({b, kv, rep * s, d});
  auto scores = torch::matmul(qg, k.transpose(2, 3)).view({b, h, s, l}).to(torch::kFloat32) *
                (1.0 / std::sqrt(static_cast<double>(d)));
  if (mask.defined()) scores = scores + mask;
  // ref: eager_attention_forward: softmax in float32, then back to the query dtype
  auto probs = torch::softmax(scores, -1).to(q.scalar_type()).view({b, kv, rep * s, l});
  return torch::matmul(probs, v).view({b, h, s, d});
#endif
}

}  // namespace refract::model
