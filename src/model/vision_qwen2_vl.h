// Qwen2-VL's vision tower (model_type qwen2_vl): LayerNorm (weight and bias) before attention
// and MLP, an fc1 / fc2 MLP with hidden_act (quick_gelu), full attention over each frame in
// every block (no windows), LayerNorm ln_q in the merger.
// ref: modeling_qwen2_vl.py@4.50 Qwen2VisionTransformerPretrainedModel
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/vision_model.h"

namespace refract::model {

// ref: VisionMlp: fc2(act(fc1(x))), both with biases
class Qwen2VLVisionMlpImpl : public torch::nn::Module {
 public:
  explicit Qwen2VLVisionMlpImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};
  std::string hidden_act;
};
TORCH_MODULE(Qwen2VLVisionMlp);

class Qwen2VLVisionBlockImpl : public torch::nn::Module {
 public:
  explicit Qwen2VLVisionBlockImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& cu_seqlens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  VisionAttention attn{nullptr};
  Qwen2VLVisionMlp mlp{nullptr};
};
TORCH_MODULE(Qwen2VLVisionBlock);

// ln_q (LayerNorm per patch), then the 4 patches of a merged unit concatenated -> mlp.
class Qwen2VLPatchMergerImpl : public torch::nn::Module {
 public:
  explicit Qwen2VLPatchMergerImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [N, D] -> [N/4, out_hidden]
  torch::nn::LayerNorm ln_q{nullptr};
  MergerMlp mlp{nullptr};
};
TORCH_MODULE(Qwen2VLPatchMerger);

class Qwen2VisionTransformerImpl : public VisionTowerImpl {
 public:
  explicit Qwen2VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) override;
  torch::nn::Module& merger_module() override { return *merger; }

  torch::nn::ModuleList blocks{nullptr};
  Qwen2VLPatchMerger merger{nullptr};
};

}  // namespace refract::model
