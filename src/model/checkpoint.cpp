// HF checkpoint load / save for Qwen2_5_VL.
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "io/safetensors.h"
#include "io/torch_tensors.h"
#include "model/qwen2_5_vl.h"

namespace refract::model {
namespace fs = std::filesystem;

torch::ScalarType parse_torch_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kFloat16;
  REFRACT_FAIL() << "torch_dtype '" << name << "' is not supported (float32 | bfloat16 | float16)";
}

std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: REFRACT_FAIL() << "unsupported model dtype " << t;
  }
}

namespace {

// ref: transformers >= 4.52 names (model.visual.*, model.language_model.*) -> <= 4.51 names.
std::string normalize_name(const std::string& n) {
  static const std::string kVisual = "model.visual.", kLm = "model.language_model.";
  if (n.rfind(kVisual, 0) == 0) return "visual." + n.substr(kVisual.size());
  if (n.rfind(kLm, 0) == 0) return "model." + n.substr(kLm.size());
  return n;
}

bool is_adapter_param(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

const char* kTokenizerFiles[] = {"tokenizer.json",         "tokenizer_config.json", "vocab.json",
                                 "merges.txt",             "special_tokens_map.json", "added_tokens.json",
                                 "chat_template.json",     "chat_template.jinja",   "preprocessor_config.json"};

}  // namespace

Qwen2_5_VL load_pretrained(const std::string& dir, torch::Device device, const std::string& torch_dtype) {
  Qwen2_5_VLConfig config = load_config(dir);
  const torch::ScalarType dtype = parse_torch_dtype(torch_dtype == "auto" ? config.torch_dtype : torch_dtype);
  Qwen2_5_VL model(config);
  model->to(device, dtype);
  model->name_or_path = fs::is_directory(dir) ? dir : fs::path(dir).parent_path().string();

  io::TensorStore store = io::TensorStore::open(dir);
  std::map<std::string, const io::TensorInfo*> by_name;
  for (const auto& raw : store.names()) {
    const std::string n = normalize_name(raw);
    REFRACT_CHECK(!by_name.count(n)) << dir << ": tensor " << n << " appears under both naming layouts";
    by_name[n] = store.find(raw);
  }
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    if (is_adapter_param(name)) continue;
    auto it = by_name.find(name);
    REFRACT_CHECK(it != by_name.end()) << dir << ": checkpoint has no tensor '" << name << "'";
    const io::TensorInfo& info = *it->second;
    torch::Tensor& p = item.value();
    REFRACT_CHECK(info.shape == p.sizes().vec())
        << dir << ": tensor '" << name << "' has shape " << c10::IntArrayRef(info.shape) << ", config.json implies "
        << p.sizes();
    p.copy_(io::to_tensor(info));
    used.insert(name);
  }
  for (const auto& [name, info] : by_name) {
    if (used.count(name)) continue;
    // ref: tied checkpoints saved by some tools still carry lm_head.weight (== embed_tokens).
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    REFRACT_FAIL() << dir << ": unexpected tensor '" << name << "' (not a parameter of this config)";
  }
  LOG_INFO("loaded {} ({} parameters, {})", dir, count_parameters(*model), torch_dtype_name(dtype));
  return model;
}

void save_pretrained(Qwen2_5_VLImpl& model, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (is_adapter_param(item.key())) continue;
    tensors.emplace_back(item.key(), item.value().detach());
  }
  // A stale shard index would shadow the new single file.
  std::error_code ec;
  fs::remove(fs::path(dir) / "model.safetensors.index.json", ec);
  io::save_tensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});

  Qwen2_5_VLConfig c = model.config();
  c.torch_dtype = torch_dtype_name(model.dtype());
  write_file_atomic((fs::path(dir) / "config.json").string(), config_to_json(c));

  const fs::path src = model.name_or_path;
  const bool has_src = !src.empty() && fs::is_directory(src) && !fs::equivalent(src, fs::path(dir), ec);
  if (has_src && fs::exists(src / "generation_config.json")) {
    write_file_atomic((fs::path(dir) / "generation_config.json").string(),
                      read_file((src / "generation_config.json").string()));
  } else if (!fs::exists(fs::path(dir) / "generation_config.json")) {
    nlohmann::json g = {{"bos_token_id", c.bos_token_id}, {"eos_token_id", {c.eos_token_id}}};
    if (c.pad_token_id >= 0) g["pad_token_id"] = c.pad_token_id;
    write_file_atomic((fs::path(dir) / "generation_config.json").string(), g.dump(2) + "\n");
  }
  if (has_src) copy_tokenizer_files(src.string(), dir);
}

void copy_tokenizer_files(const std::string& src_dir, const std::string& dir) {
  const fs::path src = src_dir;
  for (const char* f : kTokenizerFiles) {
    if (fs::exists(src / f)) write_file_atomic((fs::path(dir) / f).string(), read_file((src / f).string()));
  }
}

}  // namespace refract::model
