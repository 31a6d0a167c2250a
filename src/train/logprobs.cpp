#include "train/logprobs.h"

#include <algorithm>
#include <utility>

#include "common/check.h"
#include "model/kv_cache.h"
#include "train/grpo_loss.h"

namespace refract::train {
namespace {

// Left-padded prompt ids and mask [P, L] (CPU).
std::pair<torch::Tensor, torch::Tensor> left_padded(const std::vector<std::vector<int64_t>>& prompts,
                                                    int64_t pad_id) {
  const int64_t p = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& r : prompts) longest = std::max(longest, r.size());
  const int64_t plen = static_cast<int64_t>(longest);
  torch::Tensor ids = torch::full({p, plen}, pad_id, torch::kInt64);
  torch::Tensor mask = torch::zeros({p, plen}, torch::kInt64);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < p; ++i) {
    const auto& r = prompts[i];
    const int64_t off = plen - static_cast<int64_t>(r.size());
    for (size_t j = 0; j < r.size(); ++j) ia[i][off + j] = r[j], ma[i][off + j] = 1;
  }
  return {ids, mask};
}

// A sampled completion may contain vision special tokens (<|image_pad|>, <|vision_start|>):
// fed back as input they would be taken for image positions (count mismatch with the
// embeddings, wrong M-RoPE). They are fed as padding instead; their log-probs are still read
// at the sampled ids. ref: TRL has the same hazard with HF Qwen2.5-VL.
torch::Tensor completion_input(const model::Qwen2_5_VLImpl& model, const PolicyBatch& batch) {
  torch::Tensor in = batch.completion_ids.cpu().to(torch::kInt64).clone();
  const auto& mc = model.config();
  for (int64_t special : {mc.image_token_id, mc.video_token_id, mc.vision_start_token_id})
    in.masked_fill_(in == special, batch.pad_id);
  return in;
}

// The batch's images and videos, as given: both paths run exactly the prompts of
// batch.prompt_ids, whose vision inputs the batch holds in prompt order, so the forward takes
// them whole (its k-th image / video token run takes the k-th item).
void set_vision(const model::Qwen2_5_VLImpl& model, const PolicyBatch& batch, model::ModelInputs* in) {
  const torch::Device dev = model.device();
  if (batch.image_embeds.defined()) {
    in->image_embeds = batch.image_embeds;
    in->image_grid_thw = batch.image_grid_thw.to(dev);
  } else if (batch.pixel_values.defined()) {
    in->pixel_values = batch.pixel_values.to(dev, model.dtype());
    in->image_grid_thw = batch.image_grid_thw.to(dev);
  }
  if (batch.video_embeds.defined()) {
    in->video_embeds = batch.video_embeds;
  } else if (batch.pixel_values_videos.defined()) {
    in->pixel_values_videos = batch.pixel_values_videos.to(dev, model.dtype());
  }
  if (in->video_embeds.defined() || in->pixel_values_videos.defined()) {
    REFRACT_CHECK(batch.video_grid_thw.defined())
        << "PolicyBatch: videos given without video_grid_thw (one row per video)";
    in->video_grid_thw = batch.video_grid_thw.to(dev);
    in->second_per_grid_ts = batch.second_per_grid_ts;  // read on the CPU (get_rope_index)
  }
}

// One sequence per row. Logits [B, T, V]: position k predicts completion token k.
torch::Tensor logits_one_sequence_per_row(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch) {
  const torch::Device dev = model.device();
  const int64_t t = batch.completion_ids.size(1);
  auto [prompt, pmask] = left_padded(batch.prompt_ids, batch.pad_id);
  model::ModelInputs in;
  in.input_ids = torch::cat({prompt, completion_input(model, batch)}, 1).to(dev);
  in.attention_mask = torch::cat({pmask, batch.completion_mask.cpu().to(torch::kInt64)}, 1).to(dev);
  set_vision(model, batch, &in);
  // ref: trl: logits_to_keep = completion length + 1, the last logit (after the final
  // token) is dropped.
  in.logits_to_keep = t + 1;
  return model.forward(in).logits.slice(1, 0, t);
}

// The prompts once, into a differentiable KV cache; each row extends its prompt's copy with
// its completion. The prompt's last logit predicts completion token 0, the completion's own
// positions 0..T-2 predict tokens 1..T-1.
torch::Tensor logits_shared_prompt(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch) {
  const torch::Device dev = model.device();
  const int64_t b = batch.completion_ids.size(0), t = batch.completion_ids.size(1);
  const int64_t u = static_cast<int64_t>(batch.prompt_ids.size());
  REFRACT_CHECK(static_cast<int64_t>(batch.row_prompt.size()) == b)
      << "PolicyBatch: row_prompt has " << batch.row_prompt.size() << " entries for " << b << " rows";
  for (int64_t p : batch.row_prompt)
    REFRACT_CHECK(p >= 0 && p < u) << "PolicyBatch: row_prompt " << p << " outside [0, " << u << ")";
  auto [prompt, pmask] = left_padded(batch.prompt_ids, batch.pad_id);
  model::ModelInputs in;
  in.input_ids = prompt.to(dev);
  in.attention_mask = pmask.to(dev);
  set_vision(model, batch, &in);
  in.logits_to_keep = 1;
  model::KVCache cache = model::KVCache::differentiable(model.config(), u);
  torch::Tensor first = model.forward(in, &cache).logits;  // [U, 1, V]
  const torch::Tensor rows = torch::tensor(batch.row_prompt, torch::kInt64).to(dev);
  first = first.index_select(0, rows);
  if (t == 1) return first;
  cache.select_rows(rows);  // gradients of the copies add up in the shared prompt
  torch::Tensor mask = torch::cat({pmask.to(dev).index_select(0, rows),
                                   batch.completion_mask.to(dev, torch::kInt64).narrow(1, 0, t - 1)},
                                  1);
  torch::Tensor rest = model.forward_extend(completion_input(model, batch).narrow(1, 0, t - 1).to(dev), mask, cache);
  return torch::cat({first, rest}, 1);
}

}  // namespace

PolicyLogps completion_logps(model::Qwen2_5_VLImpl& model, const PolicyBatch& batch,
                             double temperature, bool with_entropy) {
  torch::Tensor logits = batch.row_prompt.empty() ? logits_one_sequence_per_row(model, batch)
                                                  : logits_shared_prompt(model, batch);
  logits = logits.to(torch::kFloat32);
  PolicyLogps r;
  r.logps = selective_log_softmax(logits, batch.completion_ids.to(model.device()), temperature);
  if (with_entropy) r.entropies = entropy_from_logits(logits, temperature);
  return r;
}

}  // namespace refract::train
