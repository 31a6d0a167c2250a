// Request -> prompt ids + pixel_values -> generate() -> OpenAI choices.
#include "serve/engine.h"

#include <random>
#include <unordered_map>

#include "common/check.h"
#include "common/log.h"
#include "generate/generator.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "serve/api_error.h"
#include "serve/delta_text.h"
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

ChatResult ChatEngine::run(const PreparedChat& p, const std::function<bool()>& cancelled, const DeltaSink& on_delta) {
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
  if (req.logprobs) options.top_logprobs = req.top_logprobs;

  // ref: OpenAI / vLLM: the eos token is not part of the message content.
  auto content_ids = [&](const generate::Completion& c) {
    std::vector<int32_t> ids = to_int32(c.ids);
    if (c.finish_reason == generate::FinishReason::kEos && !ids.empty()) ids.pop_back();
    return ids;
  };
  auto finish_reason = [](const generate::Completion& c) {
    return c.finish_reason == generate::FinishReason::kLength ? "length" : "stop";
  };
  std::unordered_map<int64_t, std::string> token_text;  // id -> bytes, for logprobs
  auto piece = [&](int64_t id) -> const std::string& {
    auto it = token_text.find(id);
    if (it == token_text.end()) it = token_text.emplace(id, tok.decode({static_cast<int32_t>(id)})).first;
    return it->second;
  };
  auto logprob_token = [&](int64_t id, float logprob) {
    LogprobToken t;
    t.bytes = piece(id);
    t.token = req.return_tokens_as_token_ids ? "token_id:" + std::to_string(id) : t.bytes;
    t.logprob = logprob;
    return t;
  };
  auto logprob_entry = [&](int64_t id, const generate::RawLogprobs& r) {
    LogprobEntry e;
    static_cast<LogprobToken&>(e) = logprob_token(id, r.logprob);
    for (const generate::TokenLogprob& t : r.top) e.top_logprobs.push_back(logprob_token(t.id, t.logprob));
    return e;
  };

  // Streaming: each new token's text (held back while it may be part of a character or of a
  // stop string) goes out at once; its final piece is cut exactly as the non-streamed content.
  std::vector<DeltaText> deltas(static_cast<size_t>(req.n), DeltaText(req.stop));
  if (on_delta)
    options.on_token = [&](int64_t index, const generate::Completion& c, bool finished) {
      ChoiceDelta d;
      d.index = index;
      const std::string text = tok.decode(content_ids(c), /*skip_special_tokens=*/true);
      d.content = finished ? deltas[index].finish(text) : deltas[index].update(text);
      if (req.logprobs) d.logprobs.push_back(logprob_entry(c.ids.back(), c.raw_logprobs.back()));
      if (finished) d.finish_reason = finish_reason(c);
      if (!d.content.empty() || !d.logprobs.empty() || finished) on_delta(d);
    };

  const generate::GenerationResult result = generate::generate(*m.opened.model, {p.prompt}, gen, options);

  ChatResult out;
  out.logprobs = req.logprobs;
  out.prompt_tokens = static_cast<int64_t>(p.prompt.input_ids.size());
  for (const generate::Completion& c : result.completions) {
    ChatChoice choice;
    choice.token_ids = c.ids;
    out.completion_tokens += static_cast<int64_t>(c.ids.size());
    // ref: OpenAI: "the returned text will not contain the stop sequence".
    choice.text = DeltaText(req.stop).content(tok.decode(content_ids(c), /*skip_special_tokens=*/true));
    choice.finish_reason = finish_reason(c);
    if (req.logprobs)
      for (size_t t = 0; t < c.ids.size(); ++t) choice.logprobs.push_back(logprob_entry(c.ids[t], c.raw_logprobs[t]));
    out.choices.push_back(std::move(choice));
  }
  return out;
}

ChatResult ChatEngine::complete(ChatRequest request) { return run(*prepare(std::move(request))); }

}  // namespace refract::serve
