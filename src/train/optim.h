// AdamW with HF Trainer's parameter groups (no decay on biases and norm weights), the global
// gradient-norm clip and learning-rate updates.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace refract::train {

struct OptimizerSettings {
  double learning_rate = 1e-6;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
};

// Only parameters that require grad are optimised. Names decide the groups: ones containing
// "bias" or "norm" get no weight decay (ref: transformers Trainer.get_decay_parameter_names).
std::unique_ptr<torch::optim::AdamW> make_adamw(
    const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
    const OptimizerSettings& s);

void set_learning_rate(torch::optim::Optimizer& opt, double lr);

// Clips the global L2 norm of the gradients to max_norm (<= 0: no clip); returns the norm
// before clipping (TRL's `grad_norm`).
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace refract::train
