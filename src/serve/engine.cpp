// Request -> prompt ids + pixel_values -> generate() -> OpenAI choices.
#include "serve/engine.h"

#include <random>

#include "common/check.h"
#include "common/log.h"
#include "generate/generator.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "serve/api_error.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace refract::serve {

namespace {

std::vector<int32_t> to_int32(const std::vector<int64_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace

struct PreparedChat {
  ChatRequest request;
  generate::PromptInput prompt;
  int64_t max_new_tokens = 0;
};

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

std::shared_ptr<PreparedChat> ChatEngine::prepare(ChatRequest req) const {
  const Impl& m = *impl_;
  const text::Tokenizer& tok = m.opened.tok();
  auto p = std::make_shared<PreparedChat>();
  const std::vector<vision::Preprocessed> images = load_request_images(req, m.opened.processor, m.config.media);
  const text::EncodedChat chat = text::apply_chat_template(tok, req.messages, /*add_generation_prompt=*/true);
  const int64_t prompt_len = static_cast<int64_t>(chat.ids.size());
  const int64_t max_len = m.config.max_model_len;
  // ref: vLLM: "This model's maximum context length is N tokens. However, you requested ..."
  if (req.max_tokens > 0) {
    if (prompt_len + req.max_tokens > max_len)
      throw bad_request("This model's maximum context length is " + std::to_string(max_len) +
                            " tokens (max_model_len). However, you requested " + std::to_string(prompt_len + req.max_tokens) +
                            " tokens (" + std::to_string(prompt_len) + " in the messages, " +
                            std::to_string(req.max_tokens) + " in the completion).",
                        "max_tokens");
    p->max_new_tokens = req.max_tokens;
  } else {
    // No max_tokens: as vLLM, what is left of the context (at most max_completion_length).
    if (prompt_len >= max_len)
      throw bad_request("This model's maximum context length is " + std::to_string(max_len) +
                            " tokens (max_model_len). However, your messages resulted in " + std::to_string(prompt_len) +
                            " tokens (image tokens included).",
                        "messages");
    p->max_new_tokens = std::min(m.config.max_completion_length, max_len - prompt_len);
  }
  p->prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  const model::ImageTensors it = model::to_image_tensors(images);
  p->prompt.pixel_values = it.pixel_values;
  p->prompt.image_grid_thw = it.image_grid_thw;
  p->request = std::move(req);
  return p;
}

int64_t ChatEngine::prompt_tokens(const PreparedChat& p) const { return static_cast<int64_t>(p.prompt.input_ids.size()); }

ChatResult ChatEngine::run(const PreparedChat& p, const std::function<bool()>& cancelled) {
  Impl& m = *impl_;
  const text::Tokenizer& tok = m.opened.tok();
  const ChatRequest& req = p.request;

  generate::GenerationConfig gen;
  gen.max_new_tokens = p.max_new_tokens;
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
  // A client that went away, or a passed deadline, stops the work at the next decode step.
  if (cancelled)
    options.before_step = [&] {
      if (cancelled()) throw Cancelled();
    };

  const generate::GenerationResult result = generate::generate(*m.opened.model, {p.prompt}, gen, options);

  ChatResult out;
  out.prompt_tokens = static_cast<int64_t>(p.prompt.input_ids.size());
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

ChatResult ChatEngine::complete(ChatRequest request) { return run(*prepare(std::move(request))); }

}  // namespace refract::serve
