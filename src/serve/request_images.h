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

}  // namespace refract::serve
