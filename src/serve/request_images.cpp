#include "serve/request_images.h"


#include "common/check.h"
#include "serve/api_error.h"
#include "vision/image.h"
#include "vision/probe.h"
#include "vision/video.h"

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

std::vector<RequestVideo> load_request_videos(ChatRequest& req, const vision::PreprocessConfig& cfg,
                                              const MediaLimits& limits) {
  std::vector<RequestVideo> out;
  out.reserve(req.video_urls.size());
  vision::VideoLimits vl;
  vl.max_frame_pixels = limits.max_image_pixels;
  vl.max_total_frames = limits.max_video_file_frames;
  vl.max_sampled_bytes = limits.max_video_decoded_bytes;
  for (size_t i = 0; i < req.video_urls.size(); ++i) {
    const std::string& url = req.video_urls[i];
    const std::string param = i < req.video_params.size() ? req.video_params[i] : "messages";
    const std::string bytes = url.rfind("data:", 0) == 0
                                  ? data_url_bytes(url, param)
                                  : read_local_media(url, limits.allowed_local_media_path, limits.max_file_bytes, param);
    try {
      const vision::VideoOptions o = vision::video_options_from_json(
          i < req.video_items.size() ? req.video_items[i] : nlohmann::json::object(), param);
      // Header only: the frame size, count and rate; then what sampling will take.
      const vision::VideoStreamInfo info = vision::probe_video_bytes(bytes, "video", vl);
      const vision::VideoPlan plan = vision::plan_video(info, o);
      // The processor's own smart_resize of the sampled size gives the grid: the token count
      // is known before a frame is decoded.
      const vision::ResizedSize s = vision::smart_resize(plan.size.height, plan.size.width, cfg);
      const int64_t tp = cfg.temporal_patch_size, unit = cfg.patch_size * cfg.merge_size;
      const int64_t tokens = (plan.nframes + tp - 1) / tp * (s.height / unit) * (s.width / unit);
      if (tokens > limits.max_video_tokens)
        throw bad_request(param + ": the video gives " + std::to_string(tokens) + " tokens (" + std::to_string(plan.nframes) +
                              " frames of " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                              "); this server takes at most " + std::to_string(limits.max_video_tokens) +
                              " per video (lower fps, max_frames or max_pixels)",
                          param);
      const std::string_view view(bytes);
      const vision::LoadedVideo v = vision::load_planned_video("", &view, "video", info, plan, vl);
      RequestVideo rv;
      rv.processed = vision::preprocess_video(v.frames, cfg);
      rv.second_per_grid_t = static_cast<double>(tp) / v.sample_fps;
      out.push_back(std::move(rv));
    } catch (const Error& e) {
      throw bad_request(param + ": cannot use this video: " + client_text(e.what()), param);
    }
  }
  for (text::Message& m : req.messages) {
    for (text::ContentItem& item : m.content) {
      if (item.kind == text::ContentItem::Kind::kVideo)
        item.video_tokens = out.at(item.video_index).processed.num_video_tokens();
    }
  }
  return out;
}

}  // namespace refract::serve
