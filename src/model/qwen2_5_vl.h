// The Qwen2-VL model family in libtorch (Qwen2_5_VLForConditionalGeneration,
// Qwen2VLForConditionalGeneration): the family's vision tower (vision_<family>.h, chosen by
// config.json model_type), the Qwen2 decoder with M-RoPE, image-embedding scatter, KV-cache
// decoding, HF checkpoint load / save. The class is named after the first family it served;
// everything here is shared by the families.
// Modules are registered under the HF (transformers <= 4.51) parameter names, so
// named_parameters() == the safetensors keys: visual.*, model.*, lm_head.* (when untied).
// ref: https://github.com/huggingface/transformers/blob/v4.50.0/src/transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/text_model.h"
#include "model/vision_model.h"

namespace refract::model {

// Inputs of one forward pass. Only input_ids is required.
struct ModelInputs {
  torch::Tensor input_ids;       // [B, S] int64
  torch::Tensor attention_mask;  // [B, S] (1 = token, 0 = padding, left or right); undefined = all 1
  torch::Tensor pixel_values;    // [N, C*tp*p*p] float, rows of every image concatenated
  torch::Tensor image_grid_thw;  // [num_images, 3] int64
  // Optional: encode_images() output computed earlier (skips the vision tower; GRPO reuses
  // one encoding for all samples of a prompt). Takes precedence over pixel_values.
  torch::Tensor image_embeds;    // [sum(t*h*w)/4, hidden_size]
  // Videos (frames in temporal patches of 2), as transformers names them: rows of every video
  // concatenated, one video_grid_thw row per video, and (Qwen2.5-VL) the seconds each temporal
  // patch spans (temporal_patch_size / fps; undefined = 1.0 each), which scale the M-RoPE time
  // positions by vision_config.tokens_per_second.
  torch::Tensor pixel_values_videos;  // [N, C*tp*p*p]
  torch::Tensor video_grid_thw;       // [num_videos, 3] int64
  torch::Tensor second_per_grid_ts;   // [num_videos] float
  torch::Tensor video_embeds;         // optional, like image_embeds
  // Optional: positions [3, B, S]; when undefined they come from get_rope_index().
  torch::Tensor position_ids;
  // Logits only for the last K positions ([B, K, V]); 0 = all positions. The trainer only
  // needs completion positions; this avoids materialising [B, S, V].
  int64_t logits_to_keep = 0;
  bool compute_logits = true;          // false: only hidden_states (e.g. chunked log-probs)
};

struct ModelOutput {
  torch::Tensor logits;         // [B, S or K, V] in the model dtype
  torch::Tensor hidden_states;  // [B, S, H] after the final norm (always set)
  torch::Tensor position_ids;   // [3, B, S] int64
  torch::Tensor rope_deltas;    // [B, 1] int64
  torch::Tensor image_embeds;   // [N/4, H] raster order (undefined when no image)
  torch::Tensor video_embeds;   // [N/4, H] (undefined when no video)
};

// get_rope_index result (HF name).
struct RopeIndex {
  torch::Tensor position_ids;  // [3, B, S] int64; padding positions hold 1
  torch::Tensor rope_deltas;   // [B, 1] int64: max position + 1 - S
};

class Qwen2_5_VLImpl : public torch::nn::Module {
 public:
  explicit Qwen2_5_VLImpl(const Qwen2_5_VLConfig& config);

  const Qwen2_5_VLConfig& config() const { return config_; }
  torch::Device device() const;
  torch::ScalarType dtype() const;

  // Vision tower + merger: pixel_values [N, 1176], grid_thw [I, 3] -> [N/4, out_hidden]
  // (per image, t-major then merged rows then merged columns).
  torch::Tensor encode_images(const torch::Tensor& pixel_values, const torch::Tensor& image_grid_thw);

  // 3-D M-RoPE positions for a batch (left/right padding, any number of images).
  // Runs on the CPU (small integer work); results are moved to input_ids' device.
  RopeIndex get_rope_index(const torch::Tensor& input_ids, const torch::Tensor& image_grid_thw,
                           const torch::Tensor& attention_mask) const;
  // With videos: items are taken in the order their tokens appear (images and videos
  // interleaved); video frames sit at time positions video_time_position(frame, seconds).
  RopeIndex get_rope_index(const torch::Tensor& input_ids, const torch::Tensor& image_grid_thw,
                           const torch::Tensor& attention_mask, const torch::Tensor& video_grid_thw,
                           const torch::Tensor& second_per_grid_ts) const;
  // The M-RoPE time offset of a video's temporal patch `frame`. The families differ here:
  // Qwen2-VL uses the patch number, Qwen2.5-VL frame * second_per_grid_t * tokens_per_second.
  int64_t video_time_position(int64_t frame, float second_per_grid_t) const;

  // Full forward (training / scoring / prefill). With a cache: the cache must be empty;
  // K/V of all S positions are stored and cache->rope_deltas() is set.
  ModelOutput forward(const ModelInputs& inputs, KVCache* cache = nullptr);
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                      const torch::Tensor& pixel_values, const torch::Tensor& image_grid_thw,
                      KVCache* cache = nullptr, int64_t logits_to_keep = 0);

  // One decode step: next_ids [B, 1], attention_mask [B, L + 1] over everything so far
  // (L = cache.length()), rope_deltas [B, 1] from the prefill. Returns logits [B, V].
  torch::Tensor forward_decode(const torch::Tensor& next_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& rope_deltas, KVCache& cache);
  // S text tokens after what the cache holds (no images): ids [B, S], attention_mask
  // [B, L + S] or undefined; positions continue from the prefill (cache position + rope
  // delta; rope_deltas undefined = the cache's). Returns logits [B, S, V]. With
  // KVCache::differentiable this is the training path that scores G completions against one
  // shared prompt forward.
  torch::Tensor forward_extend(const torch::Tensor& ids, const torch::Tensor& attention_mask, KVCache& cache,
                               const torch::Tensor& rope_deltas = {});

  // hidden [.., H] -> logits [.., V] (lm_head, or embed_tokens when tied).
  torch::Tensor compute_logits(const torch::Tensor& hidden_states);
  // HF gradient_checkpointing_enable(): decoder layers and vision blocks recompute their
  // activations in backward (training forwards without a KV cache; model/recompute.h).
  void set_gradient_checkpointing(bool on);
  // A cache sized for this model (dtype and device of the weights).
  KVCache make_cache(int64_t batch_size, int64_t capacity) const;

  std::shared_ptr<VisionTowerImpl> visual;    // "visual" (the family's tower)
  Qwen2Model language_model{nullptr};         // "model"
  Linear lm_head{nullptr};                    // "lm_head" (registered only when untied)

  // Directory the weights came from (tokenizer files are copied from it on save).
  std::string name_or_path;

 private:
  Qwen2_5_VLConfig config_;
};
TORCH_MODULE(Qwen2_5_VL);

// ---- checkpoints ----------------------------------------------------------------------------
// "auto" (config.json torch_dtype), "float32", "bfloat16", "float16".
torch::ScalarType parse_torch_dtype(const std::string& name);
std::string torch_dtype_name(torch::ScalarType t);

// Loads config.json + safetensors (single or sharded, either naming layout) strictly: every
// parameter must be present with the right shape and no unknown tensor may remain.
Qwen2_5_VL load_pretrained(const std::string& dir, torch::Device device,
                           const std::string& torch_dtype = "auto");
// Writes config.json, model.safetensors (HF names; lm_head omitted when tied; LoRA adapters
// excluded), generation_config.json, and copies tokenizer files from `name_or_path` if present.
void save_pretrained(Qwen2_5_VLImpl& model, const std::string& dir);
// Copies the tokenizer / processor files (tokenizer.json, tokenizer_config.json, ...) that
// exist in `src_dir` into `dir` (atomically, file by file).
void copy_tokenizer_files(const std::string& src_dir, const std::string& dir);

// ---- training helpers -------------------------------------------------------------------------
void freeze_vision_modules(Qwen2_5_VLImpl& model);  // visual.* requires_grad = false
void freeze_aligner(Qwen2_5_VLImpl& model);         // visual.merger.* requires_grad = false
int64_t count_parameters(torch::nn::Module& module, bool trainable_only = false);

}  // namespace refract::model
