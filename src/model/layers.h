// Building blocks shared by the vision tower and the decoder: Linear (with an optional LoRA
// adapter, PEFT layout), RMSNorm and the activations by HF name. Parameters are named as in HF ("weight", "bias",
// "lora_A.weight", "lora_B.weight") so a module path + name is the safetensors key.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace refract::model {

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);
  // y = x W^T + b  [+ scaling * dropout(x) A^T B^T when a LoRA adapter is attached and enabled]
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features = 0, out_features = 0;
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

  // ---- LoRA (ref: peft/tuners/lora/layer.py Linear) -----------------------------------------
  // lora_A.weight [r, in] (kaiming-uniform a=sqrt(5)), lora_B.weight [out, r] (zeros).
  void add_lora(int64_t r, double alpha, double dropout);
  bool has_lora() const { return !lora_A.is_empty(); }
  // W += scaling * B A, then the adapter is removed.
  void merge_lora();
  void remove_lora();
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double lora_scaling = 0.0;   // lora_alpha / r
  double lora_dropout = 0.0;
  bool lora_enabled = true;    // false: the base layer only (GRPO reference policy)
};
TORCH_MODULE(Linear);

// y = weight * cast_back(x_f32 * rsqrt(mean(x_f32^2) + eps))
// ref: modeling_qwen2_5_vl.py Qwen2RMSNorm (the weight product happens in the model dtype).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t hidden_size, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // [hidden]
  double eps;
};
TORCH_MODULE(RMSNorm);

// y = x W^T + b, the one place every Linear and the tied lm_head go through. Inference on the
// CPU (no autograd, no autocast) with at most gemv_fast_rows() rows of float32 takes the weight-streaming kernel
// of model/gemv.h, output rows split across the torch threads; everything else is
// torch::nn::functional::linear (BLAS).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});
// Rows (product of x's leading dimensions) up to which the decode kernel is used (default 8;
// 0 = never). Settable for benchmarks that compare both paths in one run.
// env: REFRACT_GEMV_ROWS sets the initial value.
int64_t gemv_fast_rows();
void set_gemv_fast_rows(int64_t rows);

// HF's ACT2FN by name: silu, quick_gelu (x * sigmoid(1.702 x)), gelu (erf), gelu_pytorch_tanh.
torch::Tensor activation(const std::string& name, const torch::Tensor& x);

// [-x2, x1] over the two halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x);

}  // namespace refract::model
