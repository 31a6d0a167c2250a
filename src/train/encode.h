// A Sample turned into what the model and the rewards consume: chat-template token ids,
// pixel_values / image_grid_thw from the Qwen2-VL image processor, image sizes for reward
// coordinate mapping. Images are decoded and preprocessed here (cached by the caller).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/sample.h"
#include "generate/generator.h"
#include "rewards/reward.h"
#include "vision/preprocess.h"

namespace refract::text {
class Tokenizer;
}

namespace refract::train {

struct EncodedSample {
  std::vector<int64_t> prompt_ids;    // conversation up to `<|im_start|>assistant\n`
  std::vector<int64_t> full_ids;      // prompt + response + <|im_end|>\n (SFT only)
  std::vector<uint8_t> labels_mask;   // [full_ids] 1 on assistant tokens (SFT only)
  torch::Tensor pixel_values;         // [N, 1176] float (CPU); undefined without images
  torch::Tensor image_grid_thw;       // [I, 3] int64
  // Videos (read and sampled as qwen-vl-utils does; docs/models.md "Video input").
  torch::Tensor pixel_values_videos;  // [N, 1176] float (CPU); undefined without videos
  torch::Tensor video_grid_thw;       // [V, 3] int64
  torch::Tensor second_per_grid_ts;   // [V] float
  std::vector<rewards::ImageSize> image_sizes;
  std::string prompt_text;            // rendered prompt (logs, rewards)
};

// with_response: also encode the assistant target (SFT). Throws naming sample.source.
EncodedSample encode_sample(const data::Sample& sample, const text::Tokenizer& tok,
                            const vision::PreprocessConfig& pp, bool with_response);

// The sample's prompt as generation takes it (ids, images, videos).
generate::PromptInput prompt_input(const EncodedSample& e);

// Concatenates per-sample image tensors (rows of the batch in order).
void concat_images(const std::vector<const EncodedSample*>& rows, torch::Tensor* pixel_values,
                   torch::Tensor* image_grid_thw);
// The same for videos (undefined tensors when no row has one).
void concat_videos(const std::vector<const EncodedSample*>& rows, torch::Tensor* pixel_values_videos,
                   torch::Tensor* video_grid_thw, torch::Tensor* second_per_grid_ts);

}  // namespace refract::train
