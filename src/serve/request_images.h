// Decoding and preprocessing a request's images (torch-free). A picture that does not decode
// or that the processor rejects is the client's mistake: ApiError 400 naming the field.
// The decoded size is checked against max_image_pixels from the file's header BEFORE any
// pixel is allocated (a small file declaring a huge image costs nothing).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "serve/chat_request.h"
#include "vision/preprocess.h"

namespace refract::serve {

struct MediaLimits {
  int64_t max_image_pixels = 4096 * 4096;  // decoded width * height, from the header
  size_t max_file_bytes = 32u << 20;       // a local image file (a data URL is bounded by the body)
  std::string allowed_local_media_path;    // canonical; "" = no local files (see RequestLimits)
};

// One Preprocessed per request image, in order. Also fills image_tokens of every image item of
// req.messages so the chat template expands the right number of <|image_pad|>.
std::vector<vision::Preprocessed> load_request_images(ChatRequest& req, const vision::PreprocessConfig& cfg,
                                                      const MediaLimits& limits = {});

// The bytes of a base64 data URL's payload (standard or URL-safe alphabet, whitespace
// skipped, padding optional). Throws ApiError 400 naming `param`.
std::string data_url_bytes(const std::string& url, const std::string& param);

}  // namespace refract::serve
