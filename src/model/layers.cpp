#include "model/layers.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "common/check.h"
#include "model/autocast.h"
#include "model/gemv.h"

namespace refract::model {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
  // Placeholder init (checkpoints overwrite it; `refract model init` re-initialises).
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(in)));
}

namespace {
std::atomic<int64_t>& gemv_rows_setting() {
  static std::atomic<int64_t> rows{[] {
    const char* env = std::getenv("REFRACT_GEMV_ROWS");
    return env != nullptr ? std::max<int64_t>(0, std::atoll(env)) : kGemvMaxRows;
  }()};
  return rows;
}
}  // namespace

int64_t gemv_fast_rows() { return gemv_rows_setting().load(std::memory_order_relaxed); }
void set_gemv_fast_rows(int64_t rows) { gemv_rows_setting().store(std::max<int64_t>(0, rows)); }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t k = weight.size(-1);
  const int64_t rows = x.dim() >= 1 && k > 0 ? x.numel() / k : 0;
  // Not under bf16 autocast: there linear runs in bf16 by design (model/autocast.h).
  const bool fast = rows >= 1 && rows <= gemv_fast_rows() && !torch::GradMode::is_enabled() && x.is_cpu() &&
                    !autocast_state(torch::kCPU).enabled &&
                    x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32 &&
                    weight.dim() == 2 && weight.is_contiguous() && x.size(-1) == k &&
                    (!bias.defined() || (bias.scalar_type() == torch::kFloat32 && bias.is_contiguous()));
  if (!fast) {
    return bias.defined() ? torch::nn::functional::linear(x, weight, bias) : torch::nn::functional::linear(x, weight);
  }
  const torch::Tensor xc = x.contiguous();
  const int64_t n = weight.size(0);
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = n;
  torch::Tensor y = torch::empty(sizes, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Each thread takes a contiguous slice of the output rows (= of W): every weight byte is read
  // once per call, by one thread. A grain of 64 rows keeps tiny matrices on one thread.
  at::parallel_for(0, n, /*grain_size=*/64, [&](int64_t o0, int64_t o1) {
    for (int64_t r = 0; r < rows; r += kGemvMaxRows) {
      gemv_rows(xp + r * k, k, std::min(kGemvMaxRows, rows - r), wp, k, bp, yp + r * n, n, o0, o1);
    }
  });
  return y;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = model::linear(x, weight, bias);
  if (has_lora() && lora_enabled) {
    torch::Tensor h = x;
    if (lora_dropout > 0.0 && is_training()) {
      h = torch::nn::functional::dropout(h, torch::nn::functional::DropoutFuncOptions().p(lora_dropout).training(true));
    }
    // ref: peft/tuners/lora/layer.py Linear.forward: result + lora_B(lora_A(dropout(x))) * scaling
    y = y + lora_B->forward(lora_A->forward(h)) * lora_scaling;
  }
  return y;
}

void LinearImpl::add_lora(int64_t r, double alpha, double dropout) {
  REFRACT_CHECK(r > 0) << "lora_r must be positive, got " << r;
  REFRACT_CHECK(!has_lora()) << "a LoRA adapter is already attached to this Linear";
  auto opts = weight.options();
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features, r).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, out_features).bias(false)));
  lora_A->to(opts.device(), opts.dtype().toScalarType());
  lora_B->to(opts.device(), opts.dtype().toScalarType());
  {
    torch::NoGradGuard no_grad;
    // ref: peft LoraLayer.reset_lora_parameters(init_lora_weights=True): A kaiming-uniform
    // (a = sqrt(5), nn.Linear's default), B zeros, so the adapted layer starts as the base.
    torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
    lora_B->weight.zero_();
  }
  lora_scaling = alpha / static_cast<double>(r);
  lora_dropout = dropout;
  lora_enabled = true;
}

void LinearImpl::merge_lora() {
  if (!has_lora()) return;
  {
    torch::NoGradGuard no_grad;
    auto delta = torch::matmul(lora_B->weight.to(torch::kFloat32), lora_A->weight.to(torch::kFloat32)) * lora_scaling;
    weight.copy_((weight.to(torch::kFloat32) + delta).to(weight.scalar_type()));
  }
  remove_lora();
}

void LinearImpl::remove_lora() {
  if (!has_lora()) return;
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
}

RMSNormImpl::RMSNormImpl(int64_t hidden, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({hidden}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * torch::rsqrt(var + eps);
  // ref: Qwen2RMSNorm: weight * hidden_states.to(input_dtype)
  return weight * xf.to(x.scalar_type());
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  if (name == "silu") return torch::silu(x);
  // ref: transformers/activations.py QuickGELUActivation
  if (name == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  if (name == "gelu") return F::gelu(x);
  if (name == "gelu_pytorch_tanh") return F::gelu(x, F::GELUFuncOptions().approximate("tanh"));
  REFRACT_FAIL() << "activation '" << name << "' is not supported (silu | quick_gelu | gelu | gelu_pytorch_tanh)";
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  return torch::cat({-x2, x1}, -1);
}

}  // namespace refract::model
