// Preprocessed images -> the model's image inputs, written once for every caller.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "vision/preprocess.h"

namespace refract::model {

struct ImageTensors {
  torch::Tensor pixel_values;    // [sum of rows, C] float32 on the CPU; undefined without images
  torch::Tensor image_grid_thw;  // [images, 3] int64
};

// Concatenates the images in order (the order of their <|image_pad|> runs in the prompt).
ImageTensors to_image_tensors(const std::vector<vision::Preprocessed>& images);

}  // namespace refract::model
