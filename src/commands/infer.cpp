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

namespace refract::commands {

void declare(Options& o, InferSettings& s) {
  model::declare(o, static_cast<model::ModelSettings&>(s));
  o.add("image", &s.image, "image file(s), placed before the prompt text");
  o.add("prompt", &s.prompt, "user prompt text");
  o.add("system", &s.system, "system message (default: \"You are a helpful assistant.\")");
  generate::declare(o, s.generation);
}

std::vector<InferCompletion> run_infer(const InferSettings& s) {
  REFRACT_CHECK(!s.prompt.empty() || !s.image.empty()) << "--prompt and/or --image is required";
  model::OpenedModel m = model::open_model(s);
  const text::Tokenizer& tok = m.tok();

  // The chat template expands each image item to its number of <|image_pad|> tokens.
  std::vector<vision::Preprocessed> images;
  std::vector<text::ContentItem> content;
  for (size_t i = 0; i < s.image.size(); ++i) {
    images.push_back(vision::preprocess_image(vision::decode_image_file(s.image[i]), m.processor));
    content.push_back(text::ContentItem::make_image(static_cast<int64_t>(i), images.back().num_image_tokens()));
  }
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
