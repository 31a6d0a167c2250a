#include "commands/infer.h"

#include <torch/torch.h>

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
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
  generate::GenerateOptions opt;
  opt.decode = [&tok](const std::vector<int64_t>& ids) {
    return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
  };
  const generate::GenerationResult result = generate::generate(*m.model, {prompt}, gc, opt);
  const auto& st = result.stats;
  LOG_INFO("prompt {} tokens, prefill {:.3f} s; {} tokens generated in {:.3f} s ({:.1f} tok/s)",
           prompt.input_ids.size(), st.prefill_seconds, st.generated_tokens, st.decode_seconds,
           st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0.0);
  std::vector<InferCompletion> out;
  for (const auto& c : result.completions) {
    InferCompletion ic;
    ic.text = tok.decode(std::vector<int32_t>(c.ids.begin(), c.ids.end()), /*skip_special_tokens=*/true);
    ic.finish_reason = generate::finish_reason_name(c.finish_reason);
    ic.num_tokens = static_cast<int64_t>(c.ids.size());
    out.push_back(std::move(ic));
  }
  return out;
}

}  // namespace refract::commands
