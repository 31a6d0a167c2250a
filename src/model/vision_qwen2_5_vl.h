// Qwen2.5-VL's vision tower (model_type qwen2_5_vl): RMSNorm before attention and MLP, a gated
// SiLU MLP with biases, windowed attention except in fullatt_block_indexes, RMSNorm ln_q in the
// merger, merged units reordered into windows and back.
// ref: modeling_qwen2_5_vl.py@4.50 Qwen2_5_VisionTransformerPretrainedModel
#pragma once
#include <torch/torch.h>

#include "model/vision_model.h"

namespace refract::model {

class Qwen2_5_VLMLPImpl : public torch::nn::Module {
 public:
  Qwen2_5_VLMLPImpl(int64_t hidden, int64_t inter, bool bias);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2_5_VLMLP);

class Qwen2_5_VLVisionBlockImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLVisionBlockImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& cu_seqlens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  RMSNorm norm1{nullptr}, norm2{nullptr};
  VisionAttention attn{nullptr};
  Qwen2_5_VLMLP mlp{nullptr};
};
TORCH_MODULE(Qwen2_5_VLVisionBlock);

// ln_q (RMSNorm per patch), then the 4 patches of a merged unit concatenated -> mlp.
class Qwen2_5_VLPatchMergerImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLPatchMergerImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [N, D] -> [N/4, out_hidden]
  RMSNorm ln_q{nullptr};
  MergerMlp mlp{nullptr};
};
TORCH_MODULE(Qwen2_5_VLPatchMerger);

class Qwen2_5_VisionTransformerImpl : public VisionTowerImpl {
 public:
  explicit Qwen2_5_VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) override;
  torch::nn::Module& merger_module() override { return *merger; }

  torch::nn::ModuleList blocks{nullptr};
  Qwen2_5_VLPatchMerger merger{nullptr};
};

}  // namespace refract::model
