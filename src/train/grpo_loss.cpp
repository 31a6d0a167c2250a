#include "train/grpo_loss.h"

#include <algorithm>

#include "common/check.h"

namespace refract::train {

namespace {
double masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  const double denom = mask.sum().item<double>();
  if (denom <= 0) return 0.0;
  return (x * mask).sum().item<double>() / denom;
}
}  // namespace

GrpoLossOutput grpo_loss(const GrpoLossInputs& in, const GrpoLossOptions& opt) {
  const torch::Tensor& logp = in.per_token_logps;
  REFRACT_CHECK(logp.defined() && logp.dim() == 2) << "per_token_logps must be [B, T]";
  const torch::Tensor mask = in.completion_mask.to(logp.scalar_type());
  REFRACT_CHECK(mask.sizes() == logp.sizes()) << "completion_mask must match per_token_logps";
  // ref: trl grpo_trainer: with num_iterations == 1 the old policy is the current one, so
  // the ratio is exactly 1 (logged loss ~0) while the gradient is A * d logp.
  const torch::Tensor old = in.old_per_token_logps.defined() ? in.old_per_token_logps
                                                               : logp.detach();
  const torch::Tensor adv = in.advantages.to(logp.scalar_type()).unsqueeze(1);  // [B, 1]

  torch::Tensor log_ratio = logp - old;
  torch::Tensor log_w;
  if (opt.importance_sampling_level == "token") {
    log_w = log_ratio;
  } else if (opt.importance_sampling_level == "sequence") {
    // GSPO: one ratio per sequence, the exp of the masked mean log-ratio.
    log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)).unsqueeze(-1);
  } else {
    REFRACT_FAIL() << "importance_sampling_level: '" << opt.importance_sampling_level
                   << "' is not one of token, sequence";
  }
  const torch::Tensor coef_1 = torch::exp(log_w);
  const torch::Tensor coef_2 = torch::clamp(coef_1, 1.0 - opt.epsilon_low, 1.0 + opt.epsilon_high);
  torch::Tensor per_token_loss = -torch::min(coef_1 * adv, coef_2 * adv);
  if (in.entropy_mask.defined()) per_token_loss = per_token_loss * in.entropy_mask.to(mask.dtype());

  GrpoLossOutput out;
  if (opt.beta != 0.0) {
    REFRACT_CHECK(in.ref_per_token_logps.defined()) << "beta != 0 needs reference log-probs";
    const torch::Tensor d = in.ref_per_token_logps - logp;
    const torch::Tensor kl = torch::exp(d) - d - 1.0;  // k3 estimator, >= 0
    per_token_loss = per_token_loss + opt.beta * kl;
    out.kl = masked_mean(kl.detach(), mask);
  }

  const double ga = static_cast<double>(opt.gradient_accumulation_steps);
  const torch::Tensor masked = per_token_loss * mask;
  // With num_sequences / num_tokens (data parallel) each rank's loss is its share of the mean
  // over the whole micro-batch; the ranks' gradients are then summed.
  if (opt.loss_type == "grpo") {
    const torch::Tensor per_seq = masked.sum(-1) / mask.sum(-1).clamp_min(1.0);
    out.loss = (opt.num_sequences > 0 ? per_seq.sum() / opt.num_sequences : per_seq.mean()) / ga;
  } else if (opt.loss_type == "bnpo") {
    out.loss = opt.num_tokens > 0 ? masked.sum() / std::max(1.0, opt.num_tokens) / ga
                                  : masked.sum() / mask.sum().clamp_min(1.0) / ga;
  } else if (opt.loss_type == "dr_grpo") {
    const double rows = opt.num_sequences > 0 ? opt.num_sequences : static_cast<double>(logp.size(0));
    out.loss = masked.sum() / (rows * static_cast<double>(opt.max_completion_length)) / ga;
  } else if (opt.loss_type == "dapo") {
    REFRACT_CHECK(opt.num_items_in_batch > 0) << "dapo needs num_items_in_batch > 0";
    // ref: trl: normalised by the active tokens of the whole generation batch, no / GA.
    out.loss = masked.sum() / opt.num_items_in_batch;
  } else {
    REFRACT_FAIL() << "loss_type: '" << opt.loss_type << "' is not one of grpo, bnpo, dr_grpo, dapo";
  }

  torch::NoGradGuard no_grad;
  const torch::Tensor c1 = coef_1.detach().expand_as(logp);
  const torch::Tensor a = adv.expand_as(logp);
  const torch::Tensor low = ((c1 < 1.0 - opt.epsilon_low) & (a < 0)).to(mask.dtype());
  const torch::Tensor high = ((c1 > 1.0 + opt.epsilon_high) & (a > 0)).to(mask.dtype());
  out.clip_ratio_low = masked_mean(low, mask);
  out.clip_ratio_high = masked_mean(high, mask);
  out.clip_ratio_region = masked_mean((low + high).clamp_max(1.0), mask);
  return out;
}

torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids,
                                    double temperature) {
  REFRACT_CHECK(logits.dim() == 3 && ids.dim() == 2) << "logits [B,T,V] and ids [B,T] expected";
  std::vector<torch::Tensor> rows;
  rows.reserve(logits.size(0));
  for (int64_t b = 0; b < logits.size(0); ++b) {
    torch::Tensor lp = torch::log_softmax(logits[b].div(temperature), -1);  // [T, V]
    rows.push_back(lp.gather(-1, ids[b].unsqueeze(-1)).squeeze(-1));
  }
  return torch::stack(rows);
}

torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < logits.size(0); ++b) {
    torch::Tensor lp = torch::log_softmax(logits[b].div(temperature), -1);
    rows.push_back(-(lp.exp() * lp).sum(-1));
  }
  return torch::stack(rows);
}

torch::Tensor high_entropy_mask(const torch::Tensor& entropies, const torch::Tensor& mask,
                                double quantile) {
  torch::NoGradGuard no_grad;
  const torch::Tensor m = mask.to(torch::kBool);
  if (quantile <= 0.0) return m.to(entropies.dtype());
  torch::Tensor vals = entropies.masked_select(m);
  if (vals.numel() == 0) return torch::zeros_like(entropies);
  // ref: trl get_high_entropy_mask: threshold = torch.quantile(non-pad entropies, q).
  const double thr = torch::quantile(vals.to(torch::kFloat64), quantile).item<double>();
  return ((entropies >= thr) & m).to(entropies.dtype());
}

}  // namespace refract::train
