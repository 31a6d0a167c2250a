#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string_view>

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

// ref: peft check_target_module_exists: exact name or a "." + suffix match
bool matches(const std::string& path, const std::string& t) {
  return path == t || (path.size() > t.size() && path.compare(path.size() - t.size(), t.size(), t) == 0 &&
                       path[path.size() - t.size() - 1] == '.');
}

// Vision Linears are adapted only when asked: lora_target_vision, a target naming "visual", or
// a target that matches no Linear outside the vision tower (e.g. Qwen2-VL's "attn.qkv",
// "attn.proj", "mlp.fc1", "mlp.fc2", or "qkv"): a bare name the decoder shares ("up_proj") or
// "all-linear" keeps to the language model.
bool selected(const std::string& path, const LoraConfig& c, const std::vector<std::string>& all_paths) {
  if (path == "lm_head") return false;  // ref: peft "all-linear" excludes the output layer
  for (const auto& t : c.lora_target_modules) {
    if (t == "all-linear") {
      if (!is_vision(path) || c.lora_target_vision) return true;
      continue;
    }
    if (!matches(path, t)) continue;
    if (!is_vision(path) || c.lora_target_vision || t.find("visual") != std::string::npos) return true;
    bool vision_only = true;
    for (const auto& other : all_paths) vision_only = vision_only && (is_vision(other) || !matches(other, t));
    if (vision_only) return true;
  }
  return false;
}

// PEFT key -> our module path: strip "base_model.model.", ".default", map new layout names.
bool is_adapter_name(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

// Our module path -> the module path in current transformers (>= 4.52, 5.x), which is what
// current PEFT names adapter tensors after and loads them by ("model.language_model.layers.0...",
// "model.visual.blocks.0..."). PEFT 0.21 does not rename adapter keys for Qwen2.5-VL: an adapter
// in the old layout loads as all zeros, with only a warning.
std::string hf_module_path(const std::string& path) {
  if (path.rfind("visual.", 0) == 0) return "model." + path;
  if (path.rfind("model.", 0) == 0) return "model.language_model." + path.substr(6);
  return path;  // lm_head
}

// target_modules entry for one adapted module: PEFT matches a list entry by equality or as a
// "." + suffix of the module name (check_target_module_exists), so the path below the
// text-model / model root matches the module in both transformers layouts (old
// "model.layers.0.mlp.up_proj", new "model.language_model.layers.0.mlp.up_proj") and nothing else
// (the vision tower's Linears sit under "blocks", not "layers"). A bare name such as "up_proj"
// would also match the vision MLPs, which refract's "all-linear" leaves alone.
std::string peft_target_of(const std::string& path) {
  if (path.rfind("model.", 0) == 0) return path.substr(6);  // "layers.0.mlp.up_proj"
  return path;                                              // "visual.blocks.0.attn.qkv", "lm_head"
}

// A literal module name as a Python regular expression (PEFT's rank_pattern / alpha_pattern keys
// are regexes).
std::string regex_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(ch) != std::string_view::npos) out += '\\';
    out += ch;
  }
  return out;
}

// ref: peft utils/other.py get_pattern_key: the first key k (in file order) with
// re.match(rf"(.*\.)?({k})$", module_name); tried on the current transformers name, then on the
// old layout (refract's own path). nullptr when no key matches.
const nlohmann::ordered_json* pattern_value(const nlohmann::ordered_json& patterns, const std::string& path,
                                            const std::string& where) {
  if (!patterns.is_object()) return nullptr;
  for (const std::string& name : {hf_module_path(path), path}) {
    for (auto it = patterns.begin(); it != patterns.end(); ++it) {
      std::regex re;
      try {
        re = std::regex("(.*\\.)?(" + it.key() + ")");
      } catch (const std::regex_error& e) {
        REFRACT_FAIL() << where << ": pattern '" << it.key() << "' is not a regular expression refract reads: "
                       << e.what();
      }
      if (std::regex_match(name, re)) return &it.value();
    }
  }
  return nullptr;
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
  const auto all = linears(model);
  std::vector<std::string> all_paths;
  for (const auto& item : all) all_paths.push_back(item.first);
  for (auto& [path, lin] : all) {
    if (!selected(path, c, all_paths) || lin->has_lora()) continue;
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
    targets.push_back(peft_target_of(path));
    // ref: peft get_peft_model_state_dict drops the adapter name ("default") from the keys
    const std::string key = "base_model.model." + hf_module_path(path);
    tensors.emplace_back(key + ".lora_A.weight", lin->lora_A->weight.detach());
    tensors.emplace_back(key + ".lora_B.weight", lin->lora_B->weight.detach());
  }
  REFRACT_CHECK(!targets.empty()) << "save_lora: the model has no LoRA adapter";
  io::save_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  // Modules whose rank or scaling differ from r / lora_alpha (an adapter loaded with a
  // rank_pattern, alpha_pattern or use_rslora and trained on) keep them through PEFT's patterns.
  // ref: peft LoraLayer.update_layer: scaling = alpha / sqrt(r) with use_rslora, else alpha / r;
  // use_rslora is written when it explains more modules' scalings than alpha / r does.
  auto alpha_of = [](const LinearImpl& lin, bool rslora) {
    const double r = static_cast<double>(lin.lora_A->weight.size(0));
    return lin.lora_scaling * (rslora ? std::sqrt(r) : r);
  };
  auto differs = [&](double alpha) {
    return std::abs(alpha - c.lora_alpha) > 1e-12 * std::max(1.0, std::abs(c.lora_alpha));
  };
  int64_t off_plain = 0, off_rslora = 0;
  for (auto& [path, lin] : linears(model)) {
    if (!lin->has_lora()) continue;
    off_plain += differs(alpha_of(*lin, false)) ? 1 : 0;
    off_rslora += differs(alpha_of(*lin, true)) ? 1 : 0;
  }
  const bool use_rslora = off_rslora < off_plain;
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  for (auto& [path, lin] : linears(model)) {
    if (!lin->has_lora()) continue;
    const int64_t r = lin->lora_A->weight.size(0);
    const double alpha = alpha_of(*lin, use_rslora);
    const std::string key = regex_escape(peft_target_of(path));
    if (r != c.lora_r) rank_pattern[key] = r;
    if (differs(alpha)) alpha_pattern[key] = alpha;
  }
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"task_type", "CAUSAL_LM"},
                      {"base_model_name_or_path", model.name_or_path},
                      {"r", c.lora_r},
                      {"lora_alpha", c.lora_alpha},
                      {"lora_dropout", c.lora_dropout},
                      // One entry per adapted module (see peft_target_of): PEFT adapts exactly these.
                      {"target_modules", targets},
                      {"rank_pattern", rank_pattern},
                      {"alpha_pattern", alpha_pattern},
                      {"bias", "none"},
                      {"fan_in_fan_out", false},
                      {"use_rslora", use_rslora},
                      {"use_dora", false},
                      {"init_lora_weights", true},
                      {"inference_mode", true},
                      {"modules_to_save", nullptr}};
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

LoraConfig load_lora(Qwen2_5_VLImpl& model, const std::string& dir) {
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  nlohmann::ordered_json j;  // file order: PEFT takes the first matching pattern key
  try {
    j = nlohmann::ordered_json::parse(read_file(cfg_path));
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
  // lora_bias adds a bias to lora_B: its tensors would be rejected below, say why here.
  REFRACT_CHECK(!j.value("lora_bias", false)) << cfg_path << ": lora_bias adapters are not supported";
  if (j.contains("target_modules") && j["target_modules"].is_array()) {
    c.lora_target_modules = j["target_modules"].get<std::vector<std::string>>();
  } else if (j.contains("target_modules") && j["target_modules"].is_string()) {
    c.lora_target_modules = {j["target_modules"].get<std::string>()};  // "all-linear" or a regex
  }
  // The modules adapted are the ones the tensors name; target_modules is kept for information.
  const nlohmann::ordered_json no_patterns = nlohmann::ordered_json::object();
  const nlohmann::ordered_json& alpha_pattern = j.contains("alpha_pattern") ? j["alpha_pattern"] : no_patterns;
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
    if (it == by_path.end()) {
      bool exists = false;
      for (const auto& item : model.named_modules("", false)) exists = exists || item.key() == path;
      // e.g. PEFT's target "proj" also matches the vision patch embedding, a Conv3d
      REFRACT_CHECK(!exists) << dir << ": adapter on '" << path
                             << "', which is not a Linear layer (refract supports LoRA on Linear layers only)";
      REFRACT_FAIL() << dir << ": adapter for unknown module '" << path << "'";
    }
    REFRACT_CHECK(w.first.defined() && w.second.defined()) << dir << ": module '" << path << "' lacks lora_A or lora_B";
    LinearImpl* lin = it->second;
    const int64_t r = w.first.size(0);
    REFRACT_CHECK(w.first.size(1) == lin->in_features && w.second.size(0) == lin->out_features && w.second.size(1) == r)
        << dir << ": adapter shapes of '" << path << "' do not fit the layer";
    if (lin->has_lora()) lin->remove_lora();
    // ref: peft LoraModel._create_and_replace: r from rank_pattern (here: the tensors' shape),
    // alpha from alpha_pattern, else lora_alpha; LoraLayer.update_layer: scaling = alpha / sqrt(r)
    // with use_rslora, else alpha / r
    double alpha = c.lora_alpha;
    if (const auto* v = pattern_value(alpha_pattern, path, cfg_path + " alpha_pattern")) {
      REFRACT_CHECK(v->is_number()) << cfg_path << ": alpha_pattern values must be numbers";
      alpha = v->get<double>();
    }
    lin->add_lora(r, alpha, c.lora_dropout);
    if (rslora) lin->lora_scaling = alpha / std::sqrt(static_cast<double>(r));
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
