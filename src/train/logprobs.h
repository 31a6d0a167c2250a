// Log-probabilities of completion tokens under the policy: prompt (left-padded) + completion
// (right-padded) in one forward, logits only for the completion positions (TRL
// _get_per_token_logps_and_entropies).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "model/qwen2_5_vl.h"

namespace refract::train {

struct PolicyBatch {
  std::vector<std::vector<int64_t>> prompt_ids;  // per row
  torch::Tensor completion_ids;   // [B, T] int64 (pad after the end)
  torch::Tensor completion_mask;  // [B, T]
  torch::Tensor pixel_values;     // rows' images concatenated (or undefined)
  torch::Tensor image_grid_thw;
  torch::Tensor image_embeds;     // precomputed (frozen vision tower) instead of pixel_values
  int64_t pad_id = 0;
};

struct PolicyLogps {
  torch::Tensor logps;      // [B, T]
  torch::Tensor entropies;  // [B, T] (no grad), when asked
};

PolicyLogps completion_logps(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch,
                             double temperature, bool with_entropy);

}  // namespace refract::train
