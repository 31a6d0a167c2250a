#include "train/logprobs.h"

#include <algorithm>

#include "train/grpo_loss.h"

namespace refract::train {

PolicyLogps completion_logps(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch,
                             double temperature, bool with_entropy) {
  const int64_t b = static_cast<int64_t>(batch.prompt_ids.size());
  size_t p = 0;
  for (const auto& r : batch.prompt_ids) p = std::max(p, r.size());
  const int64_t plen = static_cast<int64_t>(p);
  torch::Tensor prompt = torch::full({b, plen}, batch.pad_id, torch::kInt64);
  torch::Tensor pmask = torch::zeros({b, plen}, torch::kInt64);
  auto pa = prompt.accessor<int64_t, 2>();
  auto pm = pmask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& r = batch.prompt_ids[i];
    const int64_t off = plen - static_cast<int64_t>(r.size());  // left padding
    for (size_t j = 0; j < r.size(); ++j) pa[i][off + j] = r[j], pm[i][off + j] = 1;
  }
  const torch::Device dev = model.device();
  const int64_t t = batch.completion_ids.size(1);
  model::ModelInputs in;
  // A sampled completion may contain vision special tokens (<|image_pad|>, <|vision_start|>):
  // fed back as input they would be taken for image positions (count mismatch with the
  // embeddings, wrong M-RoPE). They are fed as padding instead; their log-probs are still
  // read at the sampled ids. ref: TRL has the same hazard with HF Qwen2.5-VL.
  torch::Tensor completion_in = batch.completion_ids.cpu().clone();
  const auto& mc = model.config();
  for (int64_t special : {mc.image_token_id, mc.video_token_id, mc.vision_start_token_id})
    completion_in.masked_fill_(completion_in == special, batch.pad_id);
  in.input_ids = torch::cat({prompt, completion_in}, 1).to(dev);
  in.attention_mask = torch::cat({pmask, batch.completion_mask.cpu().to(torch::kInt64)}, 1).to(dev);
  if (batch.image_embeds.defined()) {
    in.image_embeds = batch.image_embeds;
    in.image_grid_thw = batch.image_grid_thw.to(dev);
  } else if (batch.pixel_values.defined()) {
    in.pixel_values = batch.pixel_values.to(dev, model.dtype());
    in.image_grid_thw = batch.image_grid_thw.to(dev);
  }
  // ref: trl: logits_to_keep = completion length + 1, the last logit (after the final
  // token) is dropped; position k predicts completion token k.
  in.logits_to_keep = t + 1;
  model::ModelOutput out = model.forward(in);
  torch::Tensor logits = out.logits.slice(1, 0, t).to(torch::kFloat32);
  PolicyLogps r;
  r.logps = selective_log_softmax(logits, batch.completion_ids.to(dev), temperature);
  if (with_entropy) r.entropies = entropy_from_logits(logits, temperature);
  return r;
}

}  // namespace refract::train
