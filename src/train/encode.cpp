#include "train/encode.h"

#include "common/check.h"
#include "model/image_tensors.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess_video.h"
#include "vision/video.h"

namespace refract::train {

EncodedSample encode_sample(const data::Sample& sample, const text::Tokenizer& tok,
                            const vision::PreprocessConfig& pp, bool with_response) {
  EncodedSample out;
  std::vector<text::Message> messages = sample.prompt;
  std::vector<vision::Preprocessed> images;
  std::vector<int64_t> tokens_per_image;
  for (const auto& ref : sample.images) {
    vision::Image img = ref.path.rfind("data:", 0) == 0 ? vision::decode_data_url(ref.path)
                                                         : vision::decode_image_file(ref.path);
    images.push_back(vision::preprocess_image(img, pp));
    const vision::Preprocessed& p = images.back();
    tokens_per_image.push_back(p.num_image_tokens());
    rewards::ImageSize s;
    s.width = img.width;
    s.height = img.height;
    s.resized_width = p.grid_thw[2] * pp.patch_size;
    s.resized_height = p.grid_thw[1] * pp.patch_size;
    s.path = ref.path;
    out.image_sizes.push_back(s);
  }
  for (auto& m : messages)
    for (auto& item : m.content)
      if (item.kind == text::ContentItem::Kind::kImage) {
        REFRACT_CHECK(item.image_index >= 0 &&
                      item.image_index < static_cast<int64_t>(tokens_per_image.size()))
            << sample.source << ": image index " << item.image_index << " out of range";
        item.image_tokens = tokens_per_image[item.image_index];
      }
  // Videos: read and sampled as qwen-vl-utils does, then the processor's video path.
  std::vector<vision::PreprocessedVideo> videos;
  std::vector<double> seconds;
  for (const data::VideoRef& ref : sample.videos) {
    const std::string name = ref.path.empty() ? "video frames" : ref.path;
    const vision::VideoOptions o = vision::video_options_from_json(ref.options, sample.source + ": " + name);
    const vision::LoadedVideo v =
        ref.path.empty() ? vision::load_video_image_list(ref.frames, o) : vision::load_video_file(ref.path, o);
    videos.push_back(vision::preprocess_video(v.frames, pp));
    seconds.push_back(static_cast<double>(pp.temporal_patch_size) / v.sample_fps);
  }
  for (auto& m : messages)
    for (auto& item : m.content)
      if (item.kind == text::ContentItem::Kind::kVideo) {
        REFRACT_CHECK(item.video_index >= 0 && item.video_index < static_cast<int64_t>(videos.size()))
            << sample.source << ": video index " << item.video_index << " out of range";
        item.video_tokens = videos[size_t(item.video_index)].num_video_tokens();
      }
  const model::VideoTensors vt = model::to_video_tensors(videos, seconds);
  out.pixel_values_videos = vt.pixel_values_videos;
  out.video_grid_thw = vt.video_grid_thw;
  out.second_per_grid_ts = vt.second_per_grid_ts;
  const model::ImageTensors it = model::to_image_tensors(images);
  out.pixel_values = it.pixel_values;
  out.image_grid_thw = it.image_grid_thw;
  text::EncodedChat prompt = text::apply_chat_template(tok, messages, true);
  out.prompt_ids.assign(prompt.ids.begin(), prompt.ids.end());
  out.prompt_text = text::render_chat_text(messages, true);
  if (with_response) {
    REFRACT_CHECK(!sample.response.empty()) << sample.source << ": no assistant response for SFT";
    text::Message a;
    a.role = "assistant";
    a.content.push_back(text::ContentItem::make_text(sample.response));
    messages.push_back(a);
    text::EncodedChat full = text::apply_chat_template(tok, messages, false);
    out.full_ids.assign(full.ids.begin(), full.ids.end());
    out.labels_mask = full.assistant_mask;
  }
  return out;
}

generate::PromptInput prompt_input(const EncodedSample& e) {
  generate::PromptInput p;
  p.input_ids = e.prompt_ids;
  p.pixel_values = e.pixel_values;
  p.image_grid_thw = e.image_grid_thw;
  p.pixel_values_videos = e.pixel_values_videos;
  p.video_grid_thw = e.video_grid_thw;
  p.second_per_grid_ts = e.second_per_grid_ts;
  return p;
}

void concat_images(const std::vector<const EncodedSample*>& rows, torch::Tensor* pixel_values,
                   torch::Tensor* image_grid_thw) {
  std::vector<torch::Tensor> p, g;
  for (const auto* r : rows)
    if (r->pixel_values.defined()) p.push_back(r->pixel_values), g.push_back(r->image_grid_thw);
  *pixel_values = p.empty() ? torch::Tensor() : torch::cat(p);
  *image_grid_thw = g.empty() ? torch::Tensor() : torch::cat(g);
}

void concat_videos(const std::vector<const EncodedSample*>& rows, torch::Tensor* pixel_values_videos,
                   torch::Tensor* video_grid_thw, torch::Tensor* second_per_grid_ts) {
  std::vector<torch::Tensor> p, g, s;
  for (const auto* r : rows)
    if (r->pixel_values_videos.defined())
      p.push_back(r->pixel_values_videos), g.push_back(r->video_grid_thw), s.push_back(r->second_per_grid_ts);
  *pixel_values_videos = p.empty() ? torch::Tensor() : torch::cat(p);
  *video_grid_thw = g.empty() ? torch::Tensor() : torch::cat(g);
  *second_per_grid_ts = s.empty() ? torch::Tensor() : torch::cat(s);
}

}  // namespace refract::train
