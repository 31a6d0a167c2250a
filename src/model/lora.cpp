#include "model/lora.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "io/torch_tensors.h"
#include "model/qwen2_5_vl.h"

namespace refract::model {
namespace fs = std::filesystem;

namespace {

// Every Linear of the model with its module path ("model.layers.0.self_attn.q_proj").
std::vector<std::pair<std::string, LinearImpl*>> linears(Qwen2_5_VLImpl& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (auto* lin = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), lin);
  }
  return out;
}

bool is_vision(const std::string& path) { return path.rfind("visual.", 0) == 0; }

bool selected(const std::string& path, const LoraConfig& c) {
  if (path == "lm_head") return false;  // ref: peft "all-linear" excludes the output layer
  for (const auto& t : c.lora_target_modules) {
    const bool names_vision = t.find("visual") != std::string::npos;
    if (is_vision(path) && !(c.lora_target_vision || names_vision)) continue;
    if (t == "all-linear") return true;
    // ref: peft check_target_module_exists: exact name or a "." + suffix match
    if (path == t || (path.size() > t.size() && path.compare(path.size() - t.size(), t.size(), t) == 0 &&
                      path[path.size() - t.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

// PEFT key -> our module path: strip "base_model.model.", ".default", map new layout names.
bool is_adapter_name(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

std::string module_path_of(std::string key) {
  static const std::string kPrefix = "base_model.model.";
  if (key.rfind(kPrefix, 0) == 0) key = key.substr(kPrefix.size());
  static const std::string kVisual = "model.visual.", kLm = "model.language_model.";
  if (key.rfind(kVisual, 0) == 0) key = "visual." + key.substr(kVisual.size());
  else if (key.rfind(kLm, 0) == 0) key = "model." + key.substr(kLm.size());
  return key;
}

}  // namespace

std::vector<std::string> apply_lora(Qwen2_5_VLImpl& model, const LoraConfig& c) {
  std::vector<std::string> adapted;
  for (auto& [path, lin] : linears(model)) {
    if (!selected(path, c) || lin->has_lora()) continue;
    lin->add_lora(c.lora_r, c.lora_alpha, c.lora_dropout);
    adapted.push_back(path);
  }
  REFRACT_CHECK(!adapted.empty()) << "lora_target_modules matched no Linear layer";
  return adapted;
}

void freeze_base(Qwen2_5_VLImpl& model) {
  for (auto& item : model.named_parameters()) {
    const bool adapter = item.key().find(".lora_A.") != std::string::npos ||
                         item.key().find(".lora_B.") != std::string::npos;
    item.value().set_requires_grad(adapter);
  }
}

void set_lora_enabled(Qwen2_5_VLImpl& model, bool enabled) {
  for (auto& [path, lin] : linears(model)) lin->lora_enabled = enabled;
}

LoraDisabledGuard::LoraDisabledGuard(Qwen2_5_VLImpl& model) : model_(model) { set_lora_enabled(model_, false); }
LoraDisabledGuard::~LoraDisabledGuard() { set_lora_enabled(model_, true); }

void merge_lora(Qwen2_5_VLImpl& model) {
  for (auto& [path, lin] : linears(model)) lin->merge_lora();
}

bool has_lora(Qwen2_5_VLImpl& model) {
  for (auto& [path, lin] : linears(model)) {
    if (lin->has_lora()) return true;
  }
  return false;
}

void save_lora(Qwen2_5_VLImpl& model, const LoraConfig& c, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<std::string> targets;
  for (auto& [path, lin] : linears(model)) {
    if (!lin->has_lora()) continue;
    targets.push_back(path);
    // ref: peft get_peft_model_state_dict drops the adapter name ("default") from the keys
    tensors.emplace_back("base_model.model." + path + ".lora_A.weight", lin->lora_A->weight.detach());
    tensors.emplace_back("base_model.model." + path + ".lora_B.weight", lin->lora_B->weight.detach());
  }
  REFRACT_CHECK(!targets.empty()) << "save_lora: the model has no LoRA adapter";
  io::save_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"task_type", "CAUSAL_LM"},
                      {"base_model_name_or_path", model.name_or_path},
                      {"r", c.lora_r},
                      {"lora_alpha", c.lora_alpha},
                      {"lora_dropout", c.lora_dropout},
                      // Full module paths: exact for PEFT (name == target) and for refract.
                      {"target_modules", targets},
                      {"bias", "none"},
                      {"fan_in_fan_out", false},
                      {"use_rslora", false},
                      {"use_dora", false},
                      {"init_lora_weights", true},
                      {"inference_mode", true},
                      {"modules_to_save", nullptr}};
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

LoraConfig load_lora(Qwen2_5_VLImpl& model, const std::string& dir) {
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    REFRACT_FAIL() << cfg_path << ": invalid JSON: " << e.what();
  }
  REFRACT_CHECK(j.value("peft_type", "LORA") == "LORA") << cfg_path << ": peft_type must be LORA";
  LoraConfig c;
  c.lora_r = j.value("r", c.lora_r);
  c.lora_alpha = j.value("lora_alpha", c.lora_alpha);
  c.lora_dropout = j.value("lora_dropout", c.lora_dropout);
  const bool rslora = j.value("use_rslora", false);
  REFRACT_CHECK(!j.value("use_dora", false)) << cfg_path << ": DoRA adapters are not supported";
  if (j.contains("target_modules") && j["target_modules"].is_array()) {
    c.lora_target_modules = j["target_modules"].get<std::vector<std::string>>();
  }
  auto tensors = io::load_tensors((fs::path(dir) / "adapter_model.safetensors").string());
  std::map<std::string, LinearImpl*> by_path;
  for (auto& [path, lin] : linears(model)) by_path[path] = lin;
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> ab;
  for (auto& [key, t] : tensors) {
    std::string k = key;
    // ref: some PEFT versions keep the adapter name: ...lora_A.default.weight
    const std::string kDefault = ".default.weight";
    if (k.size() > kDefault.size() && k.compare(k.size() - kDefault.size(), kDefault.size(), kDefault) == 0) {
      k = k.substr(0, k.size() - kDefault.size()) + ".weight";
    }
    const std::string kA = ".lora_A.weight", kB = ".lora_B.weight";
    auto ends = [&](const std::string& suf) {
      return k.size() > suf.size() && k.compare(k.size() - suf.size(), suf.size(), suf) == 0;
    };
    REFRACT_CHECK(ends(kA) || ends(kB)) << dir << ": unexpected adapter tensor '" << key << "'";
    const std::string path = module_path_of(k.substr(0, k.size() - kA.size()));
    (ends(kA) ? ab[path].first : ab[path].second) = t;
  }
  torch::NoGradGuard no_grad;
  for (auto& [path, w] : ab) {
    auto it = by_path.find(path);
    REFRACT_CHECK(it != by_path.end()) << dir << ": adapter for unknown module '" << path << "'";
    REFRACT_CHECK(w.first.defined() && w.second.defined()) << dir << ": module '" << path << "' lacks lora_A or lora_B";
    LinearImpl* lin = it->second;
    const int64_t r = w.first.size(0);
    REFRACT_CHECK(w.first.size(1) == lin->in_features && w.second.size(0) == lin->out_features && w.second.size(1) == r)
        << dir << ": adapter shapes of '" << path << "' do not fit the layer";
    if (lin->has_lora()) lin->remove_lora();
    lin->add_lora(r, c.lora_alpha, c.lora_dropout);
    // ref: peft LoraLayer.update_layer: scaling = alpha / sqrt(r) with use_rslora, else alpha / r
    if (rslora) lin->lora_scaling = c.lora_alpha / std::sqrt(static_cast<double>(r));
    lin->lora_A->weight.copy_(w.first);
    lin->lora_B->weight.copy_(w.second);
  }
  LOG_INFO("loaded LoRA adapter {} ({} modules)", dir, ab.size());
  return c;
}

void load_lora_weights_into(Qwen2_5_VLImpl& model, const std::string& dir) {
  auto tensors = io::load_tensors((fs::path(dir) / "adapter_model.safetensors").string());
  std::map<std::string, torch::Tensor> params;
  for (auto& item : model.named_parameters()) params[item.key()] = item.value();
  torch::NoGradGuard no_grad;
  size_t copied = 0;
  for (auto& [key, t] : tensors) {
    std::string k = key;
    const std::string kDefault = ".default.weight";
    if (k.size() > kDefault.size() && k.compare(k.size() - kDefault.size(), kDefault.size(), kDefault) == 0)
      k = k.substr(0, k.size() - kDefault.size()) + ".weight";
    const std::string lora_part = k.substr(k.rfind(".lora_"));  // ".lora_A.weight"
    const std::string name = module_path_of(k.substr(0, k.size() - lora_part.size())) + lora_part;
    auto it = params.find(name);
    REFRACT_CHECK(it != params.end()) << dir << ": adapter tensor '" << key << "' has no attached adapter";
    REFRACT_CHECK(it->second.sizes() == t.sizes()) << dir << ": adapter tensor '" << key << "' has shape "
                                                   << t.sizes() << ", the attached adapter " << it->second.sizes();
    it->second.copy_(t);
    ++copied;
  }
  size_t attached = 0;
  for (auto& [name, p] : params) attached += is_adapter_name(name) ? 1 : 0;
  REFRACT_CHECK(copied == attached) << dir << ": " << copied << " adapter tensors for " << attached
                                    << " attached adapter weights";
}

}  // namespace refract::model
