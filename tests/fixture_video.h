// The decoded frames of a video fixture (tests/fixtures/video/fetch.safetensors, made by
// make_sampling_golden.py: [frames, height, width, 3] uint8 after qwen-vl-utils' sampling) as
// the images vision::preprocess_video takes.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/torch_tensors.h"
#include "vision/image.h"

namespace refract::testing {

inline std::vector<vision::Image> fixture_video_frames(const std::string& name) {
  const auto golden = io::load_tensors(std::string(REFRACT_FIXTURES_DIR) + "/video/fetch.safetensors");
  const torch::Tensor frames = golden.at(name).contiguous();
  std::vector<vision::Image> images;
  for (int64_t f = 0; f < frames.size(0); ++f) {
    vision::Image im;
    im.height = frames.size(1);
    im.width = frames.size(2);
    const uint8_t* p = frames[f].data_ptr<uint8_t>();
    im.rgb.assign(p, p + im.height * im.width * 3);
    images.push_back(std::move(im));
  }
  return images;
}

}  // namespace refract::testing
