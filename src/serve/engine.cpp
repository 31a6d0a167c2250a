// Request -> prompt ids + pixel_values -> generate() -> OpenAI choices.
#include "serve/engine.h"

#include <random>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "generate/generator.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "serve/request_images.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace refract::serve {

namespace {

std::vector<int32_t> to_int32(const std::vector<int64_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace

struct ChatEngine::Impl {
  EngineConfig config;
  model::OpenedModel opened;
  std::mt19937_64 seed_source{std::random_device{}()};
};

ChatEngine::ChatEngine(const EngineConfig& config) : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  // Merged once at load: serving then costs exactly what the base model costs.
  impl_->opened = model::open_model(config.model, model::AdapterUse::kMerge);
  impl_->opened.tok();  // serving needs the tokenizer next to the weights: fail at start, not per request
}

ChatEngine::~ChatEngine() = default;

ChatResult ChatEngine::complete(ChatRequest req) {
  Impl& m = *impl_;
  const text::Tokenizer& tok = m.opened.tok();
  const std::vector<vision::Preprocessed> images = load_request_images(req, m.opened.processor);
  const text::EncodedChat chat = text::apply_chat_template(tok, req.messages, /*add_generation_prompt=*/true);

  generate::PromptInput prompt;
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  const model::ImageTensors it = model::to_image_tensors(images);
  prompt.pixel_values = it.pixel_values;
  prompt.image_grid_thw = it.image_grid_thw;

  generate::GenerationConfig gen;
  gen.max_new_tokens = req.max_tokens > 0 ? req.max_tokens : m.config.max_completion_length;
  gen.do_sample = req.temperature > 0;  // ref: OpenAI temperature 0 = (near) deterministic
  gen.temperature = req.temperature > 0 ? req.temperature : 1.0;
  gen.top_p = req.top_p;
  gen.top_k = req.top_k;
  gen.min_p = req.min_p;
  gen.repetition_penalty = req.repetition_penalty;
  gen.seed = req.seed ? *req.seed : static_cast<int64_t>(m.seed_source() >> 1);
  gen.stop_token_ids = m.opened.stop_token_ids;
  gen.stop_strings = req.stop;
  gen.num_generations = req.n;
  gen.pad_token_id = m.opened.pad_token_id;
  generate::GenerateOptions options;
  options.decode = [&](const std::vector<int64_t>& ids) { return tok.decode(to_int32(ids)); };

  const generate::GenerationResult result = generate::generate(*m.opened.model, {prompt}, gen, options);

  ChatResult out;
  out.prompt_tokens = static_cast<int64_t>(prompt.input_ids.size());
  for (const generate::Completion& c : result.completions) {
    ChatChoice choice;
    choice.token_ids = c.ids;
    out.completion_tokens += static_cast<int64_t>(c.ids.size());
    std::vector<int64_t> ids = c.ids;
    // ref: OpenAI / vLLM: the eos token is not part of the message content.
    if (c.finish_reason == generate::FinishReason::kEos && !ids.empty()) ids.pop_back();
    choice.text = tok.decode(to_int32(ids), /*skip_special_tokens=*/true);
    if (c.finish_reason == generate::FinishReason::kStop) {
      // ref: OpenAI: "the returned text will not contain the stop sequence".
      size_t cut = std::string::npos;
      for (const std::string& s : req.stop) cut = std::min(cut, choice.text.find(s));
      if (cut != std::string::npos) choice.text.resize(cut);
    }
    choice.finish_reason = c.finish_reason == generate::FinishReason::kLength ? "length" : "stop";
    out.choices.push_back(std::move(choice));
  }
  return out;
}

}  // namespace refract::serve
