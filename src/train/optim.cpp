#include "train/optim.h"

#include "common/check.h"

namespace refract::train {

std::unique_ptr<torch::optim::AdamW> make_adamw(
    const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
    const OptimizerSettings& s) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : named_params) {
    if (!p.requires_grad()) continue;
    const bool skip = name.find("bias") != std::string::npos ||
                      name.find("norm") != std::string::npos;
    (skip ? no_decay : decay).push_back(p);
  }
  REFRACT_CHECK(!decay.empty() || !no_decay.empty()) << "no trainable parameters";
  auto opts = torch::optim::AdamWOptions(s.learning_rate)
                  .betas({s.adam_beta1, s.adam_beta2})
                  .eps(s.adam_epsilon)
                  .weight_decay(s.weight_decay);
  auto no_decay_opts = opts;
  no_decay_opts.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  // Both groups always exist so the optimizer state layout is stable for checkpoints.
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(no_decay_opts));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), opts);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> with_grad;
  for (const auto& p : params)
    if (p.grad().defined()) with_grad.push_back(p);
  if (with_grad.empty()) return 0.0;
  if (max_norm <= 0) {
    double sq = 0;
    for (const auto& p : with_grad) sq += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
    return std::sqrt(sq);
  }
  return torch::nn::utils::clip_grad_norm_(with_grad, max_norm);
}

}  // namespace refract::train
