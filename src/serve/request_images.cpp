#include "serve/request_images.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "serve/api_error.h"
#include "vision/image.h"

namespace refract::serve {

std::vector<vision::Preprocessed> load_request_images(ChatRequest& req, const vision::PreprocessConfig& cfg) {
  std::vector<vision::Preprocessed> out;
  out.reserve(req.image_urls.size());
  for (size_t i = 0; i < req.image_urls.size(); ++i) {
    const std::string& url = req.image_urls[i];
    const std::string param = i < req.image_params.size() ? req.image_params[i] : "messages";
    try {
      const vision::Image image =
          url.rfind("data:", 0) == 0 ? vision::decode_data_url(url) : vision::decode_image_file(url);
      out.push_back(vision::preprocess_image(image, cfg));
    } catch (const Error& e) {
      throw bad_request(param + ": cannot use this image: " + e.what(), param);
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
