// Preprocessed images -> the model's image inputs, written once for every caller.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "vision/preprocess.h"
#include "vision/preprocess_video.h"

namespace refract::model {

struct ImageTensors {
  torch::Tensor pixel_values;    // [sum of rows, C] float32 on the CPU; undefined without images
  torch::Tensor image_grid_thw;  // [images, 3] int64
};

// Concatenates the images in order (the order of their <|image_pad|> runs in the prompt).
ImageTensors to_image_tensors(const std::vector<vision::Preprocessed>& images);

struct VideoTensors {
  torch::Tensor pixel_values_videos;  // [sum of rows, C*tp*p*p] float32 on the CPU; undefined without videos
  torch::Tensor video_grid_thw;       // [videos, 3] int64
  torch::Tensor second_per_grid_ts;   // [videos] float32 (Qwen2.5-VL's M-RoPE time scale)
};

// The same for videos (the order of their <|video_pad|> runs); second_per_grid_ts[i] =
// temporal_patch_size / sample_fps of video i (transformers' Qwen2_5_VLProcessor).
VideoTensors to_video_tensors(const std::vector<vision::PreprocessedVideo>& videos,
                              const std::vector<double>& second_per_grid_ts);

}  // namespace refract::model
