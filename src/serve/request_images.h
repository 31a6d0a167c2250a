// Decoding and preprocessing a request's images (torch-free). A picture that does not decode
// or that the processor rejects is the client's mistake: ApiError 400 naming the field.
#pragma once
#include <vector>

#include "serve/chat_request.h"
#include "vision/preprocess.h"

namespace refract::serve {

// One Preprocessed per request image, in order. Also fills image_tokens of every image item of
// req.messages so the chat template expands the right number of <|image_pad|>.
std::vector<vision::Preprocessed> load_request_images(ChatRequest& req, const vision::PreprocessConfig& cfg);

// The model directory's preprocessor_config.json (min_pixels, max_pixels, patch_size,
// merge_size, temporal_patch_size) over the processor defaults; the defaults when absent.
vision::PreprocessConfig load_preprocessor_config(const std::string& model_dir);

}  // namespace refract::serve
