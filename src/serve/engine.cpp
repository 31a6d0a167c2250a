// Request -> prompt ids + pixel_values -> generate() -> OpenAI choices.
#include "serve/engine.h"

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "generate/generator.h"
#include "model/lora.h"
#include "model/qwen2_5_vl.h"
#include "serve/request_images.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace refract::serve {
namespace fs = std::filesystem;

namespace {

// eos / pad ids of generation_config.json (eos_token_id is an int or a list).
// ref: transformers GenerationConfig; Qwen2.5-VL lists [151645, 151643].
void read_generation_config(const std::string& dir, std::vector<int64_t>& eos, int64_t& pad) {
  const fs::path path = fs::path(dir) / "generation_config.json";
  if (!fs::exists(path)) return;
  const nlohmann::json j = nlohmann::json::parse(read_file(path.string()), nullptr, false);
  REFRACT_CHECK(j.is_object()) << path.string() << ": not a JSON object";
  if (j.contains("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) eos.push_back(e.get<int64_t>());
    if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) eos.push_back(x.get<int64_t>());
  }
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer()) pad = j["pad_token_id"].get<int64_t>();
}

std::vector<int32_t> to_int32(const std::vector<int64_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace

struct ChatEngine::Impl {
  EngineConfig config;
  torch::Device device{torch::kCPU};
  model::Qwen2_5_VL model{nullptr};
  text::Tokenizer tokenizer;
  std::vector<int64_t> stop_token_ids;
  int64_t pad_token_id = -1;
  std::mt19937_64 seed_source{std::random_device{}()};

  Impl(const EngineConfig& c, text::Tokenizer tok) : config(c), device(c.device), tokenizer(std::move(tok)) {}
};

ChatEngine::ChatEngine(const EngineConfig& config) {
  REFRACT_CHECK(!config.model.empty()) << "model: a model directory is required";
  REFRACT_CHECK(fs::exists(fs::path(config.model) / "tokenizer.json"))
      << "model: " << config.model << " has no tokenizer.json (serve needs the tokenizer next to the weights)";
  impl_ = std::make_unique<Impl>(config, text::Tokenizer::from_file(config.model));
  Impl& m = *impl_;
  at::set_num_threads(static_cast<int>(config.threads));
  m.model = model::load_pretrained(config.model, m.device, config.torch_dtype);
  if (!config.adapter.empty()) {
    // Merged once at load: serving then costs exactly what the base model costs.
    model::load_lora(*m.model, config.adapter);
    model::merge_lora(*m.model);
    LOG_INFO("merged adapter {}", config.adapter);
  }
  m.model->eval();

  read_generation_config(config.model, m.stop_token_ids, m.pad_token_id);
  if (m.stop_token_ids.empty()) {
    if (auto eos = m.tokenizer.eos_token_id()) m.stop_token_ids.push_back(*eos);
    else m.stop_token_ids.push_back(m.model->config().eos_token_id);
  }
  // The template's special tokens must be the ids the model was trained with: a tokenizer that
  // disagrees with config.json would silently feed the wrong image positions.
  const int32_t image_pad = m.tokenizer.token_to_id("<|image_pad|>");
  REFRACT_CHECK(image_pad == m.model->config().image_token_id)
      << config.model << ": tokenizer <|image_pad|> is " << image_pad << " but config.json image_token_id is "
      << m.model->config().image_token_id;
}

ChatEngine::~ChatEngine() = default;

ChatResult ChatEngine::complete(ChatRequest req) {
  Impl& m = *impl_;
  const std::vector<vision::Preprocessed> images = load_request_images(req, m.config.processor);
  const text::EncodedChat chat = text::apply_chat_template(m.tokenizer, req.messages, /*add_generation_prompt=*/true);

  generate::PromptInput prompt;
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  if (!images.empty()) {
    std::vector<torch::Tensor> rows;
    std::vector<int64_t> grid;
    for (const vision::Preprocessed& p : images) {
      // [rows, 1176] view over the processor's buffer, copied by cat below.
      rows.push_back(torch::from_blob(const_cast<float*>(p.pixel_values.data()), {p.rows, int64_t(p.pixel_values.size()) / p.rows},
                                      torch::kFloat32));
      grid.insert(grid.end(), p.grid_thw.begin(), p.grid_thw.end());
    }
    prompt.pixel_values = torch::cat(rows, 0).to(m.device);
    prompt.image_grid_thw = torch::tensor(grid, torch::kLong).view({-1, 3});
  }

  generate::GenerationConfig gen;
  gen.max_new_tokens = req.max_tokens > 0 ? req.max_tokens : m.config.max_completion_length;
  gen.do_sample = req.temperature > 0;  // ref: OpenAI temperature 0 = (near) deterministic
  gen.temperature = req.temperature > 0 ? req.temperature : 1.0;
  gen.top_p = req.top_p;
  gen.top_k = req.top_k;
  gen.min_p = req.min_p;
  gen.repetition_penalty = req.repetition_penalty;
  gen.seed = req.seed ? *req.seed : static_cast<int64_t>(m.seed_source() >> 1);
  gen.stop_token_ids = m.stop_token_ids;
  gen.stop_strings = req.stop;
  gen.num_generations = req.n;
  gen.pad_token_id = m.pad_token_id;
  generate::GenerateOptions options;
  options.decode = [&](const std::vector<int64_t>& ids) { return m.tokenizer.decode(to_int32(ids)); };

  const generate::GenerationResult result = generate::generate(*m.model, {prompt}, gen, options);

  ChatResult out;
  out.prompt_tokens = static_cast<int64_t>(prompt.input_ids.size());
  for (const generate::Completion& c : result.completions) {
    ChatChoice choice;
    choice.token_ids = c.ids;
    out.completion_tokens += static_cast<int64_t>(c.ids.size());
    std::vector<int64_t> ids = c.ids;
    // ref: OpenAI / vLLM: the eos token is not part of the message content.
    if (c.finish_reason == generate::FinishReason::kEos && !ids.empty()) ids.pop_back();
    choice.text = m.tokenizer.decode(to_int32(ids), /*skip_special_tokens=*/true);
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
