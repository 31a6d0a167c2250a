// Qwen2.5-VL vision tower ("visual.*"): patch embedding, 2-D rotary, windowed / full
// attention blocks, PatchMerger, inverse window permutation.
// ref: modeling_qwen2_5_vl.py@4.50 Qwen2_5_VisionTransformerPretrainedModel
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/layers.h"
#include "model/vision_windows.h"

namespace refract::model {

// Conv3d(C -> D, kernel = stride = (tp, p, p), no bias) applied as one matmul: each
// pixel_values row is exactly one kernel footprint. weight [D, C, tp, p, p] ("proj.weight").
class PatchEmbedProjImpl : public torch::nn::Module {
 public:
  PatchEmbedProjImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor weight;
};
TORCH_MODULE(PatchEmbedProj);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // [N, 1176] -> [N, D]
  PatchEmbedProj proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VisionAttentionImpl : public torch::nn::Module {
 public:
  explicit VisionAttentionImpl(const Qwen2_5_VLVisionConfig& c);
  // x [N, D]; cu_seqlens: segment boundaries (attention never crosses them); cos/sin [N, hd].
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& cu_seqlens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  int64_t num_heads, head_dim;
  Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(VisionAttention);

class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(int64_t hidden, int64_t inter, bool bias);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(VisionMlp);

class VisionBlockImpl : public torch::nn::Module {
 public:
  explicit VisionBlockImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& cu_seqlens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  RMSNorm norm1{nullptr}, norm2{nullptr};
  VisionAttention attn{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(VisionBlock);

// "0" Linear(4D -> 4D), GELU (erf), "2" Linear(4D -> out_hidden): nn.Sequential's names.
class MergerMlpImpl : public torch::nn::Module {
 public:
  MergerMlpImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc0{nullptr}, fc2{nullptr};  // registered as "0" and "2"
};
TORCH_MODULE(MergerMlp);

// ln_q (RMSNorm per patch), then the 4 patches of a merged unit concatenated -> mlp.
class PatchMergerImpl : public torch::nn::Module {
 public:
  explicit PatchMergerImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [N, D] -> [N/4, out_hidden]
  RMSNorm ln_q{nullptr};
  MergerMlp mlp{nullptr};
};
TORCH_MODULE(PatchMerger);

class Qwen2_5_VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c);
  // pixel_values [N, 1176], grid_thw [I, 3] -> [N/4, out_hidden] in raster merged order.
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw);
  // rot_pos_emb: angles [N, head_dim/2] in processor row order (fp32).
  torch::Tensor rot_pos_emb(const std::vector<GridTHW>& grid) const;

  Qwen2_5_VLVisionConfig config;
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  PatchMerger merger{nullptr};
  bool gradient_checkpointing = false;  // recompute each block in backward (model/recompute.h)
};
TORCH_MODULE(Qwen2_5_VisionTransformer);

}  // namespace refract::model
