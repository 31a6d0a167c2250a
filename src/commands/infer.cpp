#include "commands/infer.h"

#include <torch/torch.h>

#include <chrono>

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "generate/decode_batch.h"
#include "generate/generator.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess.h"
#include "vision/preprocess_video.h"
#include "vision/video.h"

namespace refract::commands {

void declare(Options& o, InferSettings& s) {
  model::declare(o, static_cast<model::ModelSettings&>(s));
  o.add("image", &s.image, "image file(s), placed before the prompt text");
  o.add("video", &s.video, "video file(s) (FFmpeg: mp4, webm, avi, ...), after the images");
  o.add("video_frames", &s.video_frames, "one video given as its frames: image files in order");
  o.add("video_fps", &s.video_fps, "frames sampled per second of video (qwen-vl-utils fps; 0 = 2)");
  o.add("video_max_frames", &s.video_max_frames, "most frames sampled per video (0 = 768)");
  o.add("video_min_pixels", &s.video_min_pixels, "least pixels per sampled frame (0 = 128*28*28)");
  o.add("video_max_pixels", &s.video_max_pixels, "most pixels per sampled frame (0 = 768*28*28)");
  o.add("video_total_pixels", &s.video_total_pixels, "most pixels over all frames of a video (0 = 128000*28*28*0.9)");
  o.add("prompt", &s.prompt, "user prompt text");
  o.add("system", &s.system, "system message (default: \"You are a helpful assistant.\")");
  generate::declare(o, s.generation);
}

std::vector<InferCompletion> run_infer(const InferSettings& s) {
  REFRACT_CHECK(!s.prompt.empty() || !s.image.empty() || !s.video.empty() || !s.video_frames.empty())
      << "--prompt, --image or --video is required";
  vision::VideoOptions vo;
  auto set_if = [](std::optional<double>& field, double v, const char* key) {
    REFRACT_CHECK(v >= 0) << key << " must be >= 0 (0 = qwen-vl-utils' default), got " << v;
    if (v > 0) field = v;
  };
  set_if(vo.fps, s.video_fps, "video_fps");
  set_if(vo.max_frames, s.video_max_frames, "video_max_frames");
  set_if(vo.min_pixels, s.video_min_pixels, "video_min_pixels");
  set_if(vo.max_pixels, s.video_max_pixels, "video_max_pixels");
  set_if(vo.total_pixels, s.video_total_pixels, "video_total_pixels");
  model::OpenedModel m = model::open_model(s);
  const text::Tokenizer& tok = m.tok();

  // The chat template expands each image item to its number of <|image_pad|> tokens.
  std::vector<vision::Preprocessed> images;
  std::vector<text::ContentItem> content;
  for (size_t i = 0; i < s.image.size(); ++i) {
    images.push_back(vision::preprocess_image(vision::decode_image_file(s.image[i]), m.processor));
    content.push_back(text::ContentItem::make_image(static_cast<int64_t>(i), images.back().num_image_tokens()));
  }
  // Videos: read and sampled as qwen-vl-utils does, then the processor's video path.
  std::vector<vision::PreprocessedVideo> videos;
  std::vector<double> seconds;
  auto add_video = [&](const vision::LoadedVideo& v, const std::string& name) {
    videos.push_back(vision::preprocess_video(v.frames, m.processor));
    seconds.push_back(static_cast<double>(m.processor.temporal_patch_size) / v.sample_fps);
    LOG_INFO("{}: {} frames of {} sampled at {:.3f} fps -> {} frames of {}x{}, {} video tokens", name, v.frame_indices.size(),
             v.total_frames, v.sample_fps, v.frames.size(), v.frames[0].width, v.frames[0].height,
             videos.back().num_video_tokens());
    content.push_back(text::ContentItem::make_video(static_cast<int64_t>(videos.size()) - 1, videos.back().num_video_tokens()));
  };
  for (const std::string& path : s.video) add_video(vision::load_video_file(path, vo), path);
  if (!s.video_frames.empty()) add_video(vision::load_video_image_list(s.video_frames, vo), "video_frames");
  if (!s.prompt.empty()) content.push_back(text::ContentItem::make_text(s.prompt));
  std::vector<text::Message> messages;
  if (!s.system.empty()) messages.push_back({"system", {text::ContentItem::make_text(s.system)}});
  messages.push_back({"user", content});
  const text::EncodedChat chat = text::apply_chat_template(tok, messages, /*add_generation_prompt=*/true);
  generate::PromptInput prompt;
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  const model::ImageTensors it = model::to_image_tensors(images);
  prompt.pixel_values = it.pixel_values;
  prompt.image_grid_thw = it.image_grid_thw;
  const model::VideoTensors vt = model::to_video_tensors(videos, seconds);
  prompt.pixel_values_videos = vt.pixel_values_videos;
  prompt.video_grid_thw = vt.video_grid_thw;
  prompt.second_per_grid_ts = vt.second_per_grid_ts;

  generate::GenerationConfig gc = s.generation;
  if (gc.stop_token_ids.empty()) gc.stop_token_ids = m.stop_token_ids;
  if (gc.pad_token_id < 0) gc.pad_token_id = m.pad_token_id;
  // The serving engine (continuous batching, generate::DecodeBatch) with one request.
  generate::DecodeRequest req;
  req.prompt = prompt;
  req.config.sampling.do_sample = gc.do_sample;
  req.config.sampling.temperature = gc.temperature;
  req.config.sampling.top_p = gc.top_p;
  req.config.sampling.top_k = gc.top_k;
  req.config.sampling.min_p = gc.min_p;
  req.config.sampling.repetition_penalty = gc.repetition_penalty;
  req.config.seed = gc.seed;
  req.config.max_new_tokens = gc.max_new_tokens;
  req.config.stop_token_ids = gc.stop_token_ids;
  req.config.stop_strings = gc.stop_strings;
  req.num_generations = gc.num_generations;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<generate::Completion> completions =
      generate::decode_all(*m.model, 1, [&](size_t) { return req; }, gc.num_generations,
                           [&tok](const std::vector<int64_t>& ids) {
                             return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
                           })
          .front();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t generated = 0;
  for (const auto& c : completions) generated += static_cast<int64_t>(c.ids.size());
  LOG_INFO("prompt {} tokens; {} tokens generated in {:.3f} s (prefill included, {:.1f} tok/s)", prompt.input_ids.size(),
           generated, secs, secs > 0 ? generated / secs : 0.0);
  std::vector<InferCompletion> out;
  for (const auto& c : completions) {
    InferCompletion ic;
    ic.text = tok.decode(std::vector<int32_t>(c.ids.begin(), c.ids.end()), /*skip_special_tokens=*/true);
    ic.finish_reason = generate::finish_reason_name(c.finish_reason);
    ic.num_tokens = static_cast<int64_t>(c.ids.size());
    out.push_back(std::move(ic));
  }
  return out;
}

}  // namespace refract::commands
