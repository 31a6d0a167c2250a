// `refract model forward` and `refract model init`.
#include "commands/model.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "io/torch_tensors.h"
#include "model/init.h"
#include "model/open_model.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"

namespace refract::commands {
namespace fs = std::filesystem;
using namespace refract::model;  // the init presets, checkpoints and config types

void declare(Options& o, ModelForwardSettings& s) {
  model::declare(o, static_cast<model::ModelSettings&>(s));
  o.add("inputs", &s.inputs,
        "safetensors with input_ids [B,S] and optionally attention_mask, pixel_values, image_grid_thw, "
        "pixel_values_videos, video_grid_thw, second_per_grid_ts");
  o.add("output", &s.output, "output safetensors: logits, position_ids, rope_deltas, image_embeds, video_embeds");
}

void run_model_forward(const ModelForwardSettings& s) {
  REFRACT_CHECK(!s.inputs.empty()) << "--inputs is required";
  REFRACT_CHECK(!s.output.empty()) << "--output is required";
  torch::NoGradGuard no_grad;
  model::OpenedModel m = model::open_model(s);
  auto in = io::load_tensors(s.inputs);
  REFRACT_CHECK(in.count("input_ids")) << s.inputs << ": no tensor 'input_ids'";
  model::ModelInputs mi;
  mi.input_ids = in["input_ids"].to(m.device);
  if (in.count("attention_mask")) mi.attention_mask = in["attention_mask"].to(m.device);
  if (in.count("pixel_values")) mi.pixel_values = in["pixel_values"].to(m.device, m.model->dtype());
  if (in.count("image_grid_thw")) mi.image_grid_thw = in["image_grid_thw"].to(m.device);
  // Videos, in transformers' names (frames already patchified, as Qwen2VLImageProcessor gives them).
  if (in.count("pixel_values_videos")) mi.pixel_values_videos = in["pixel_values_videos"].to(m.device, m.model->dtype());
  if (in.count("video_grid_thw")) mi.video_grid_thw = in["video_grid_thw"].to(m.device);
  if (in.count("second_per_grid_ts")) mi.second_per_grid_ts = in["second_per_grid_ts"];
  auto out = m.model->forward(mi);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"logits", out.logits.to(torch::kFloat32)},
      {"position_ids", out.position_ids},
      {"rope_deltas", out.rope_deltas},
  };
  if (out.image_embeds.defined()) tensors.emplace_back("image_embeds", out.image_embeds.to(torch::kFloat32));
  if (out.video_embeds.defined()) tensors.emplace_back("video_embeds", out.video_embeds.to(torch::kFloat32));
  io::save_tensors(s.output, tensors);
  LOG_INFO("forward: logits {} -> {}", c10::str(out.logits.sizes()), s.output);
}

void declare(Options& o, ModelInitSettings& s) {
  o.add("preset", &s.preset, "model size").choices({"tiny", "small"});
  o.add("model_type", &s.model_type, "model family (config.json model_type)").choices({"qwen2_5_vl", "qwen2_vl"});
  o.add("tokenizer", &s.tokenizer, "tokenizer.json or its directory (vocab size and special ids)");
  o.add("output", &s.output, "output directory (HF layout)");
  o.add("seed", &s.seed, "random seed of the weights");
  o.add("torch_dtype", &s.torch_dtype, "float32 | bfloat16 | float16");
  o.add("threads", &s.threads, "CPU threads (at::set_num_threads)");
}

void run_model_init(const ModelInitSettings& s) {
  REFRACT_CHECK(!s.tokenizer.empty()) << "--tokenizer is required";
  REFRACT_CHECK(!s.output.empty()) << "--output is required";
  REFRACT_CHECK(s.threads > 0) << "threads must be positive, got " << s.threads;
  at::set_num_threads(static_cast<int>(s.threads));
  const auto tok = text::Tokenizer::from_file(s.tokenizer);
  Qwen2_5_VLConfig c = preset_config(s.preset, s.model_type);
  c.vocab_size = tok.vocab_size();
  auto id = [&](const char* token, bool required) -> int64_t {
    const int32_t v = tok.token_to_id(token);
    REFRACT_CHECK(v >= 0 || !required) << s.tokenizer << ": the tokenizer has no " << token
                                       << " token (Qwen2-VL special tokens are required)";
    return v;
  };
  const int64_t endoftext = id("<|endoftext|>", true);
  c.bos_token_id = endoftext;
  c.pad_token_id = tok.pad_token_id().value_or(endoftext);
  c.eos_token_id = tok.eos_token_id().value_or(id("<|im_end|>", true));
  c.vision_start_token_id = id("<|vision_start|>", true);
  c.vision_end_token_id = id("<|vision_end|>", true);
  c.image_token_id = id("<|image_pad|>", true);
  c.vision_token_id = id("<|vision_pad|>", false);
  c.video_token_id = id("<|video_pad|>", false);
  c.torch_dtype = s.torch_dtype;

  Qwen2_5_VL model(c);
  init_weights(*model, static_cast<uint64_t>(s.seed));
  model->to(parse_torch_dtype(s.torch_dtype));
  const fs::path tok_path(s.tokenizer);
  model->name_or_path = fs::is_directory(tok_path) ? tok_path.string() : tok_path.parent_path().string();
  save_pretrained(*model, s.output);
  // ref: Qwen2.5-VL / Qwen2-VL generation_config.json: eos = [<|im_end|>, <|endoftext|>], pad = bos
  nlohmann::json g = {{"bos_token_id", c.bos_token_id},
                      {"eos_token_id", {c.eos_token_id, endoftext}},
                      {"pad_token_id", c.pad_token_id}};
  write_file_atomic((fs::path(s.output) / "generation_config.json").string(), g.dump(2) + "\n");
  // A tokenizer given as a bare file is copied under its canonical name.
  if (!fs::is_directory(tok_path) && !fs::exists(fs::path(s.output) / "tokenizer.json")) {
    write_file_atomic((fs::path(s.output) / "tokenizer.json").string(), read_file(s.tokenizer));
  }
  LOG_INFO("init {}: {} parameters ({} without embeddings), vocab {} -> {}", s.preset, count_parameters(*model),
           count_parameters(*model) - c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2), c.vocab_size,
           s.output);
}

}  // namespace refract::commands
