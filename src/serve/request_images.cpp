#include "serve/request_images.h"


#include "common/check.h"
#include "serve/api_error.h"
#include "vision/image.h"
#include "vision/probe.h"

namespace refract::serve {

std::string data_url_bytes(const std::string& url, const std::string& param) {
  const size_t comma = url.find(',');
  if (url.rfind("data:", 0) != 0 || comma == std::string::npos)
    throw bad_request(param + ": not a base64 data URL", param);
  try {
    return vision::base64_decode(std::string_view(url).substr(comma + 1), param);
  } catch (const Error& e) {
    throw bad_request(client_text(e.what()), param);
  }
}

std::vector<vision::Preprocessed> load_request_images(ChatRequest& req, const vision::PreprocessConfig& cfg,
                                                      const MediaLimits& limits) {
  std::vector<vision::Preprocessed> out;
  out.reserve(req.image_urls.size());
  for (size_t i = 0; i < req.image_urls.size(); ++i) {
    const std::string& url = req.image_urls[i];
    const std::string param = i < req.image_params.size() ? req.image_params[i] : "messages";
    const std::string bytes = url.rfind("data:", 0) == 0
                                  ? data_url_bytes(url, param)
                                  : read_local_media(url, limits.allowed_local_media_path, limits.max_file_bytes, param);
    // The decompression-bomb check: the header's size, before any pixel is allocated.
    const std::optional<vision::ImageSize> size = vision::probe_image_size(bytes);
    if (!size || size->width <= 0 || size->height <= 0)
      throw bad_request(param + ": cannot use this image: not a PNG, JPEG, WebP or BMP with a readable size", param);
    // Divided, not multiplied: a PNG header may declare 2^32-1 x 2^32-1 (the product overflows).
    if (size->width > limits.max_image_pixels / size->height)
      throw bad_request(param + ": the image is " + std::to_string(size->width) + "x" + std::to_string(size->height) +
                            " pixels; this server decodes at most " + std::to_string(limits.max_image_pixels) +
                            " pixels (max_image_pixels)",
                        param);
    try {
      const vision::Image image = vision::decode_image_bytes(bytes, "image");
      out.push_back(vision::preprocess_image(image, cfg));
    } catch (const Error& e) {
      throw bad_request(param + ": cannot use this image: " + client_text(e.what()), param);
    }
  }
  for (text::Message& m : req.messages) {
    for (text::ContentItem& item : m.content) {
      if (item.kind == text::ContentItem::Kind::kImage) item.image_tokens = out.at(item.image_index).num_image_tokens();
    }
  }
  return out;
}

}  // namespace refract::serve
