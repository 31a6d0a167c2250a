// The GRPO policy loss (TRL `_compute_loss`): importance ratios against the old policy,
// PPO-style clipping with epsilon / epsilon_high, optional k3 KL to the reference, and the
// four loss_type normalisations. Shapes: B completions, T completion positions.
#pragma once
#include <torch/torch.h>

#include <string>

namespace refract::train {

struct GrpoLossOptions {
  std::string loss_type = "dapo";                   // grpo | bnpo | dr_grpo | dapo
  std::string importance_sampling_level = "token";  // token | sequence
  double epsilon_low = 0.2;
  double epsilon_high = 0.2;
  double beta = 0.0;
  int64_t gradient_accumulation_steps = 1;          // GA (grpo, bnpo, dr_grpo divide by it)
  int64_t max_completion_length = 512;              // dr_grpo's constant denominator
  // dapo: active tokens of the whole (all ranks) generation batch's share of one optimizer
  // step (TRL num_items_in_batch). Gradients are summed over ranks, so no / world_size here.
  double num_items_in_batch = 0;
  // Data parallel: the micro-batch over all ranks (0 = this batch alone, one process).
  double num_sequences = 0;  // grpo, dr_grpo: its completions
  double num_tokens = 0;     // bnpo: its active tokens
};

struct GrpoLossInputs {
  torch::Tensor per_token_logps;      // [B, T] current policy (with grad)
  torch::Tensor old_per_token_logps;  // [B, T] or undefined (= per_token_logps.detach())
  torch::Tensor ref_per_token_logps;  // [B, T], needed when beta != 0
  torch::Tensor advantages;           // [B]
  torch::Tensor completion_mask;      // [B, T] 1 up to and including EOS (float or bool)
  torch::Tensor entropy_mask;         // [B, T] optional (top_entropy_quantile)
};

struct GrpoLossOutput {
  torch::Tensor loss;  // scalar
  double kl = 0;       // masked mean k3 KL (when beta != 0)
  double clip_ratio_low = 0;     // `clip_ratio/low_mean`
  double clip_ratio_high = 0;    // `clip_ratio/high_mean`
  double clip_ratio_region = 0;  // `clip_ratio/region_mean`
};

GrpoLossOutput grpo_loss(const GrpoLossInputs& in, const GrpoLossOptions& opt);

// log p(ids) under softmax(logits / temperature): logits [B, T, V], ids [B, T] -> [B, T].
// Computed row by row through log_softmax so [B, T, V] is never materialised twice.
torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids,
                                    double temperature);

// Entropy of softmax(logits / temperature) per position: [B, T, V] -> [B, T] (no grad).
torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature);

// Mask keeping tokens whose entropy is >= the `quantile` of the masked entropies (TRL
// get_high_entropy_mask; the trainer passes 1 - top_entropy_quantile, so 0 keeps all tokens).
torch::Tensor high_entropy_mask(const torch::Tensor& entropies, const torch::Tensor& mask,
                                double quantile);

}  // namespace refract::train
