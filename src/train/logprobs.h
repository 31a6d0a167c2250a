// Log-probabilities of completion tokens under the policy (TRL
// _get_per_token_logps_and_entropies): prompt (left-padded) + completion (right-padded),
// logits only for the completion positions.
//
// Rows that share a prompt (GRPO's G completions of one prompt) can run the prompt once:
// its forward fills a differentiable KV cache, the rows take copies of it and only their
// completion tokens run through the decoder. Same logits and gradients as one long sequence
// per row; the prompt (image and video tokens included) is paid once instead of G times.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "model/qwen2_5_vl.h"

namespace refract::train {

struct PolicyBatch {
  // The prompts: one per row, or with row_prompt the distinct prompts of the batch.
  std::vector<std::vector<int64_t>> prompt_ids;
  // Row -> index into prompt_ids (shared-prompt forward); empty = row i has prompt i.
  std::vector<int64_t> row_prompt;
  torch::Tensor completion_ids;   // [B, T] int64 (pad after the end)
  torch::Tensor completion_mask;  // [B, T]
  // Vision inputs of prompt_ids, in prompt order (each prompt of prompt_ids once: with
  // row_prompt the distinct prompts' only), as model::ModelInputs names them; undefined = none.
  torch::Tensor pixel_values;     // the prompts' images concatenated
  torch::Tensor image_grid_thw;   // one row per image
  torch::Tensor image_embeds;     // precomputed (frozen vision tower) instead of pixel_values
  torch::Tensor pixel_values_videos;  // the prompts' videos concatenated (t*h*w rows each)
  torch::Tensor video_grid_thw;       // one row per video
  torch::Tensor second_per_grid_ts;   // one per video (Qwen2.5-VL time scale; undefined = 1.0)
  torch::Tensor video_embeds;         // precomputed (frozen vision tower) instead of pixel_values_videos
  int64_t pad_id = 0;
};

struct PolicyLogps {
  torch::Tensor logps;      // [B, T]
  torch::Tensor entropies;  // [B, T] (no grad), when asked
};

PolicyLogps completion_logps(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch,
                             double temperature, bool with_entropy);

}  // namespace refract::train
