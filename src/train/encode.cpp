#include "train/encode.h"

#include "common/check.h"
#include "model/image_tensors.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"

namespace refract::train {

EncodedSample encode_sample(const data::Sample& sample, const text::Tokenizer& tok,
                            const vision::PreprocessConfig& pp, bool with_response) {
  EncodedSample out;
  // Videos reach `infer`, `serve` and `data check`; the trainers do not batch them yet.
  REFRACT_CHECK(sample.videos.empty()) << sample.source << ": a video sample (" << sample.videos.size()
                                       << " video(s)); training on videos is not supported yet (infer, serve and "
                                          "`refract data check` take them)";
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

void concat_images(const std::vector<const EncodedSample*>& rows, torch::Tensor* pixel_values,
                   torch::Tensor* image_grid_thw) {
  std::vector<torch::Tensor> p, g;
  for (const auto* r : rows)
    if (r->pixel_values.defined()) p.push_back(r->pixel_values), g.push_back(r->image_grid_thw);
  *pixel_values = p.empty() ? torch::Tensor() : torch::cat(p);
  *image_grid_thw = g.empty() ? torch::Tensor() : torch::cat(g);
}

}  // namespace refract::train
