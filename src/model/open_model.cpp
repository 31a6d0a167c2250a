#include "model/open_model.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "vision/preprocessor_config.h"

namespace fs = std::filesystem;

namespace refract::model {

torch::Device parse_device(const std::string& name) {
  std::optional<torch::Device> d;
  try {
    d.emplace(name);
  } catch (const c10::Error&) {
    REFRACT_FAIL() << "device: '" << name << "' is not a device (cpu, cuda, cuda:N)";
  }
  if (d->is_cuda()) {
    REFRACT_CHECK(torch::cuda::is_available())
        << "device " << name << ": this build or machine has no CUDA device";
    REFRACT_CHECK(!d->has_index() || d->index() < static_cast<int>(torch::cuda::device_count()))
        << "device " << name << ": only " << torch::cuda::device_count() << " CUDA devices";
  }
  return *d;
}

const text::Tokenizer& OpenedModel::tok() const {
  REFRACT_CHECK(tokenizer) << "model " << model->name_or_path << " has no tokenizer.json";
  return *tokenizer;
}

namespace {

// generation_config.json's eos_token_id (int or list) and pad_token_id, if the file has them.
// ref: transformers GenerationConfig; Qwen2.5-VL lists eos [151645, 151643].
void read_generation_config(const std::string& dir, std::vector<int64_t>* eos, std::optional<int64_t>* pad) {
  const fs::path path = fs::path(dir) / "generation_config.json";
  if (!fs::exists(path)) return;
  const nlohmann::json j = nlohmann::json::parse(read_file(path.string()), nullptr, false);
  REFRACT_CHECK(j.is_object()) << path.string() << ": not a JSON object";
  if (j.contains("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) eos->push_back(e.get<int64_t>());
    if (e.is_array())
      for (const auto& x : e) {
        REFRACT_CHECK(x.is_number_integer()) << path.string() << ": eos_token_id: not a list of integers";
        eos->push_back(x.get<int64_t>());
      }
  }
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer()) *pad = j["pad_token_id"].get<int64_t>();
}

vision::PreprocessConfig processor_settings(const ModelSettings& s, const Qwen2_5_VLConfig& c) {
  vision::PreprocessConfig p = vision::load_preprocessor_config(s.model_name_or_path);
  const auto& vc = c.vision_config;
  const std::string where = s.model_name_or_path + "/preprocessor_config.json";
  REFRACT_CHECK(p.patch_size == vc.patch_size && p.merge_size == vc.spatial_merge_size &&
                p.temporal_patch_size == vc.temporal_patch_size)
      << where << ": patch_size / merge_size / temporal_patch_size " << p.patch_size << " / " << p.merge_size
      << " / " << p.temporal_patch_size << " disagree with config.json's vision_config " << vc.patch_size
      << " / " << vc.spatial_merge_size << " / " << vc.temporal_patch_size;
  if (s.min_pixels > 0) p.min_pixels = s.min_pixels;
  if (s.max_pixels > 0) p.max_pixels = s.max_pixels;
  REFRACT_CHECK(p.min_pixels <= p.max_pixels)
      << "min_pixels " << p.min_pixels << " exceeds max_pixels " << p.max_pixels << " (settings over " << where << ")";
  return p;
}

}  // namespace

OpenedModel open_model(const ModelSettings& s, AdapterUse use) {
  validate(s);
  at::set_num_threads(static_cast<int>(s.threads));
  OpenedModel m;
  m.device = parse_device(s.device);
  REFRACT_CHECK(fs::exists(fs::path(s.model_name_or_path) / "config.json"))
      << "model_name_or_path: " << s.model_name_or_path << " has no config.json (an HF-layout model directory)";
  m.model = load_pretrained(s.model_name_or_path, m.device, s.torch_dtype);
  m.model->eval();
  const Qwen2_5_VLConfig& c = m.model->config();
  if (!s.adapter.empty()) {
    m.adapter = load_lora(*m.model, s.adapter);
    if (use == AdapterUse::kMerge) {
      merge_lora(*m.model);
      LOG_INFO("merged adapter {}", s.adapter);
    }
  }
  if (fs::exists(fs::path(s.model_name_or_path) / "tokenizer.json")) {
    m.tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_file(s.model_name_or_path));
    // The template's image pads must be the id the model embeds: a tokenizer that disagrees
    // with config.json would silently put image features at the wrong positions.
    const int32_t image_pad = m.tokenizer->token_to_id("<|image_pad|>");
    REFRACT_CHECK(image_pad == c.image_token_id)
        << s.model_name_or_path << ": tokenizer <|image_pad|> is " << image_pad
        << " but config.json image_token_id is " << c.image_token_id;
  }
  std::optional<int64_t> pad;
  read_generation_config(s.model_name_or_path, &m.stop_token_ids, &pad);
  if (m.stop_token_ids.empty()) {
    std::optional<int32_t> eos = m.tokenizer ? m.tokenizer->eos_token_id() : std::nullopt;
    m.stop_token_ids.push_back(eos ? *eos : c.eos_token_id);
  }
  if (!pad && m.tokenizer && m.tokenizer->pad_token_id()) pad = *m.tokenizer->pad_token_id();
  m.pad_token_id = pad ? *pad : m.stop_token_ids.front();
  m.processor = processor_settings(s, c);
  return m;
}

}  // namespace refract::model
