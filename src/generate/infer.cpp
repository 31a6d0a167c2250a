#include "generate/infer.h"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "generate/generator.h"
#include "model/lora.h"
#include "model/qwen2_5_vl.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace refract::generate {
namespace fs = std::filesystem;

void declare(Options& o, InferSettings& s) {
  o.add("model", &s.model, "model directory (HF layout: config.json, *.safetensors, tokenizer.json)");
  o.add("adapter", &s.adapter, "PEFT LoRA adapter directory to apply (optional)");
  o.add("tokenizer", &s.tokenizer, "tokenizer.json or its directory (default: --model)");
  o.add("image", &s.image, "image file(s), placed before the prompt text");
  o.add("prompt", &s.prompt, "user prompt text");
  o.add("system", &s.system, "system message (default: \"You are a helpful assistant.\")");
  o.add("device", &s.device, "cpu | cuda | cuda:N");
  o.add("torch_dtype", &s.torch_dtype, "auto | float32 | bfloat16 | float16");
  o.add("threads", &s.threads, "CPU threads for torch");
  o.add("min_pixels", &s.min_pixels, "image processor min_pixels");
  o.add("max_pixels", &s.max_pixels, "image processor max_pixels");
  declare(o, s.generation);
}

namespace {

// eos ids from the model's generation_config.json (int or list), else config.json's.
std::vector<int64_t> default_stop_ids(const std::string& model_dir, const model::Qwen2_5_VLConfig& c,
                                      int64_t* pad_id) {
  std::vector<int64_t> ids;
  const fs::path gc = fs::path(model_dir) / "generation_config.json";
  if (fs::exists(gc)) {
    auto j = nlohmann::json::parse(read_file(gc.string()));
    if (j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_array())
        for (const auto& x : e) ids.push_back(x.get<int64_t>());
      else if (e.is_number_integer())
        ids.push_back(e.get<int64_t>());
    }
    if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer())
      *pad_id = j["pad_token_id"].get<int64_t>();
  }
  if (ids.empty()) ids.push_back(c.eos_token_id);
  return ids;
}

}  // namespace

std::vector<InferCompletion> run_infer(const InferSettings& s) {
  REFRACT_CHECK(!s.model.empty()) << "--model is required";
  REFRACT_CHECK(!s.prompt.empty() || !s.image.empty()) << "--prompt and/or --image is required";
  torch::set_num_threads(static_cast<int>(s.threads));
  const torch::Device device(s.device);
  auto model = model::load_pretrained(s.model, device, s.torch_dtype);
  model->eval();
  if (!s.adapter.empty()) model::load_lora(*model, s.adapter);
  auto tok = text::Tokenizer::from_file(s.tokenizer.empty() ? s.model : s.tokenizer);

  // Images -> pixel_values [rows, 1176] + grid rows; the chat template expands the pads.
  vision::PreprocessConfig pc;
  pc.min_pixels = s.min_pixels;
  pc.max_pixels = s.max_pixels;
  PromptInput prompt;
  std::vector<text::ContentItem> content;
  std::vector<torch::Tensor> pixels, grids;
  for (size_t i = 0; i < s.image.size(); ++i) {
    auto pre = vision::preprocess_image(vision::decode_image_file(s.image[i]), pc);
    pixels.push_back(torch::tensor(pre.pixel_values).view({pre.rows, -1}));
    grids.push_back(torch::tensor(std::vector<int64_t>(pre.grid_thw.begin(), pre.grid_thw.end())).view({1, 3}));
    content.push_back(text::ContentItem::make_image(static_cast<int64_t>(i), pre.num_image_tokens()));
  }
  if (!s.prompt.empty()) content.push_back(text::ContentItem::make_text(s.prompt));
  std::vector<text::Message> messages;
  if (!s.system.empty()) messages.push_back({"system", {text::ContentItem::make_text(s.system)}});
  messages.push_back({"user", content});
  auto chat = text::apply_chat_template(tok, messages, /*add_generation_prompt=*/true);
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  if (!pixels.empty()) {
    prompt.pixel_values = torch::cat(pixels, 0);
    prompt.image_grid_thw = torch::cat(grids, 0);
  }

  GenerationConfig gc = s.generation;
  int64_t pad_id = -1;
  auto stops = default_stop_ids(s.model, model->config(), &pad_id);
  if (gc.stop_token_ids.empty()) gc.stop_token_ids = stops;
  if (gc.pad_token_id < 0) gc.pad_token_id = pad_id;
  GenerateOptions opt;
  opt.decode = [&tok](const std::vector<int64_t>& ids) {
    return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
  };
  auto result = generate(*model, {prompt}, gc, opt);
  const auto& st = result.stats;
  LOG_INFO("prompt {} tokens, prefill {:.3f} s; {} tokens generated in {:.3f} s ({:.1f} tok/s)",
           prompt.input_ids.size(), st.prefill_seconds, st.generated_tokens, st.decode_seconds,
           st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0.0);
  std::vector<InferCompletion> out;
  for (const auto& c : result.completions) {
    InferCompletion ic;
    ic.text = tok.decode(std::vector<int32_t>(c.ids.begin(), c.ids.end()), /*skip_special_tokens=*/true);
    ic.finish_reason = finish_reason_name(c.finish_reason);
    ic.num_tokens = static_cast<int64_t>(c.ids.size());
    out.push_back(std::move(ic));
  }
  return out;
}

}  // namespace refract::generate
