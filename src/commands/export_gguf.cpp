#include "commands/export_gguf.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/open_model.h"

namespace refract::commands {
namespace fs = std::filesystem;
using nlohmann::json;
using io::gguf::TensorType;

namespace {

// gguf-py TokenType
constexpr int32_t kTokenNormal = 1, kTokenControl = 3, kTokenUserDefined = 4, kTokenUnused = 5;

json read_json(const fs::path& path) {
  try {
    return json::parse(read_file(path.string()));
  } catch (const json::exception& e) {
    REFRACT_FAIL() << path.string() << ": not valid JSON: " << e.what();
  }
}

// ref: convert_hf_to_gguf.py TextModel.does_token_look_special (added tokens that are not
// flagged special but are control tokens all the same).
bool looks_special(const std::string& t) {
  auto wrapped = [&](const std::string& open, const std::string& close) {
    return t.size() >= open.size() + close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wrapped("<unused", ">");
}

// HF name of a language-model parameter -> llama.cpp tensor name (gguf-py tensor_mapping.py).
std::string gguf_tensor_name(const std::string& hf) {
  static const std::map<std::string, std::string> top = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  if (auto it = top.find(hf); it != top.end()) return it->second;
  static const std::map<std::string, std::string> layer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) == 0) {
    const size_t dot = hf.find('.', prefix.size());
    if (dot != std::string::npos) {
      const std::string idx = hf.substr(prefix.size(), dot - prefix.size());
      if (auto it = layer.find(hf.substr(dot + 1)); it != layer.end()) return "blk." + idx + "." + it->second;
    }
  }
  REFRACT_FAIL() << "export --format gguf: parameter " << hf << " has no llama.cpp qwen2 tensor";
}

TensorType outtype_of(const std::string& s) {
  if (s == "f32") return TensorType::kF32;
  if (s == "f16") return TensorType::kF16;
  if (s == "q8_0") return TensorType::kQ8_0;
  REFRACT_FAIL() << "outtype: '" << s << "' is not f32, f16 or q8_0";
}

// gguf-py LlamaFileType of the --outtype.
uint32_t file_type_of(TensorType t) {
  switch (t) {
    case TensorType::kF32: return 0;   // ALL_F32
    case TensorType::kF16: return 1;   // MOSTLY_F16
    case TensorType::kQ8_0: return 7;  // MOSTLY_Q8_0
  }
  return 0;
}

}  // namespace

GgufVocab read_gguf_vocab(const std::string& model_dir, int64_t vocab_size) {
  const fs::path dir(model_dir);
  const fs::path tj_path = dir / "tokenizer.json";
  REFRACT_CHECK(fs::exists(tj_path)) << model_dir << ": no tokenizer.json (the GGUF file carries the tokenizer)";
  const json tj = read_json(tj_path);
  const json& model = tj.value("model", json::object());
  REFRACT_CHECK(model.value("type", "") == "BPE")
      << tj_path.string() << ": model.type is '" << model.value("type", "") << "'; only byte-level BPE "
      << "(Qwen's tokenizer.ggml.model gpt2) is exported";
  GgufVocab v;
  v.tokens.resize(vocab_size);
  v.token_types.assign(vocab_size, kTokenUnused);
  for (int64_t i = 0; i < vocab_size; ++i) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  auto set_token = [&](int64_t id, const std::string& text, int32_t type, const char* where) {
    REFRACT_CHECK(id >= 0 && id < vocab_size) << tj_path.string() << ": " << where << " token '" << text << "' has id "
                                              << id << ", outside the model's vocab_size " << vocab_size;
    v.tokens[id] = text;
    v.token_types[id] = type;
  };
  for (const auto& [text, id] : model.at("vocab").items()) set_token(id.get<int64_t>(), text, kTokenNormal, "vocab");
  // ref: TextModel.get_vocab_base: added tokens are CONTROL when special (or looking special),
  // else USER_DEFINED. note: the converter re-normalises non-normalized added tokens through
  // the HF tokenizer (decode(encode(t))); for byte-level BPE that is the identity.
  std::vector<std::pair<std::string, int64_t>> added;  // content -> id, in file order
  for (const auto& a : tj.value("added_tokens", json::array())) {
    const std::string content = a.at("content").get<std::string>();
    const int64_t id = a.at("id").get<int64_t>();
    const bool special = a.value("special", false) || looks_special(content);
    set_token(id, content, special ? kTokenControl : kTokenUserDefined, "added");
    added.emplace_back(content, id);
  }
  // ref: gguf-py SpecialVocab._try_load_from_tokenizer_json: merges as "a b"; in the [a, b] form
  // (transformers >= 4.45) a space inside a part is written as chr(ord(' ') + 256) = U+0120.
  for (const auto& m : model.value("merges", json::array())) {
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else {
      REFRACT_CHECK(m.is_array() && m.size() == 2) << tj_path.string() << ": a merge is neither \"a b\" nor [a, b]";
      std::string line;
      for (int k = 0; k < 2; ++k) {
        if (k == 1) line += ' ';
        for (char c : m[k].get<std::string>()) line += c == ' ' ? std::string("\xc4\xa0") : std::string(1, c);
      }
      v.merges.push_back(line);
    }
  }
  REFRACT_CHECK(!v.merges.empty()) << tj_path.string() << ": no merges (a BPE tokenizer without merges cannot be used)";
  // add_bos / add_eos from the post-processor (ByteLevel: neither).
  if (const json& pp = tj.value("post_processor", json()); pp.is_object()) {
    std::vector<json> procs = pp.contains("processors") ? pp["processors"].get<std::vector<json>>() : std::vector<json>{pp};
    for (const auto& p : procs) {
      const std::string type = p.value("type", "");
      REFRACT_CHECK(type == "ByteLevel")
          << tj_path.string() << ": post_processor " << type << " is not supported by the GGUF export (ByteLevel is)";
      if (v.add_bos_token < 0) v.add_bos_token = 0;
      if (v.add_eos_token < 0) v.add_eos_token = 0;
    }
  }
  static const char* kTypes[] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::map<std::string, int64_t> ids;
  const fs::path tc_path = dir / "tokenizer_config.json";
  if (fs::exists(tc_path)) {
    const json tc = read_json(tc_path);
    for (const char* typ : kTypes) {
      const std::string t(typ);
      // add_<type>_token: the post-processor's answer wins (SpecialVocab warns on a mismatch).
      int* flag = t == "bos" ? &v.add_bos_token : t == "eos" ? &v.add_eos_token : nullptr;
      if (auto it = tc.find("add_" + t + "_token"); flag && *flag < 0 && it != tc.end() && it->is_boolean())
        *flag = it->get<bool>() ? 1 : 0;
      auto e = tc.find(t + "_token");
      if (e == tc.end()) continue;
      std::string content;
      if (e->is_string()) content = e->get<std::string>();
      else if (e->is_object() && e->contains("content") && (*e)["content"].is_string()) content = (*e)["content"];
      else continue;
      for (const auto& [c, id] : added)
        if (c == content) {
          ids.emplace(t, id);
          break;
        }
    }
    // ref: SpecialVocab: tokenizer_config's chat_template, else chat_template.jinja, else
    // chat_template.json (read only when a tokenizer_config.json exists).
    if (auto ct = tc.find("chat_template"); ct != tc.end() && ct->is_string()) {
      v.chat_template = ct->get<std::string>();
    } else if (fs::exists(dir / "chat_template.jinja")) {
      v.chat_template = read_file((dir / "chat_template.jinja").string());
    } else if (fs::exists(dir / "chat_template.json")) {
      const json cj = read_json(dir / "chat_template.json");
      if (cj.contains("chat_template") && cj["chat_template"].is_string()) v.chat_template = cj["chat_template"];
    }
  }
  // config.json's <type>_token_id fills the types the tokenizer files left open.
  if (fs::exists(dir / "config.json")) {
    const json cfg = read_json(dir / "config.json");
    for (const char* typ : kTypes) {
      const std::string key = std::string(typ) + "_token_id";
      json id = cfg.value(key, json());
      if (id.is_null() && cfg.contains("text_config")) id = cfg["text_config"].value(key, json());
      if (id.is_number_integer() && id.get<int64_t>() >= 0) ids.emplace(typ, id.get<int64_t>());
    }
  }
  // cls has no GGUF key (gguf-py skips it).
  for (const char* typ : {"bos", "eos", "unk", "sep", "pad", "mask"}) {
    auto it = ids.find(typ);
    if (it == ids.end()) continue;
    REFRACT_CHECK(it->second < vocab_size) << model_dir << ": " << typ << " token id " << it->second
                                           << " is outside the vocab_size " << vocab_size;
    v.special_ids.emplace_back(typ, it->second);
  }
  return v;
}

void run_export_gguf(const ExportSettings& s) {
  REFRACT_CHECK(!s.output.empty()) << "output: the .gguf file to write is required";
  REFRACT_CHECK(!fs::is_directory(s.output)) << "output: " << s.output << " is a directory; --format gguf writes one file";
  const fs::path parent = fs::path(s.output).parent_path();
  REFRACT_CHECK(parent.empty() || fs::is_directory(parent)) << "output: the directory " << parent.string()
                                                            << " does not exist";
  REFRACT_CHECK(s.torch_dtype == "float32" || s.torch_dtype == "auto")
      << "torch_dtype: --format gguf converts from float32 weights; set --outtype instead of torch_dtype";
  const TensorType outtype = outtype_of(s.outtype);

  model::ModelSettings load = s;
  load.torch_dtype = "float32";  // converted from float32 whatever the checkpoint's dtype
  load.device = "cpu";
  model::OpenedModel m = model::open_model(load, model::AdapterUse::kMerge);
  REFRACT_CHECK(!model::has_lora(*m.model)) << "adapter layers remain after merge_lora";
  const model::Qwen2_5_VLConfig& c = m.model->config();

  io::gguf::Writer w;
  const std::string arch = "qwen2";
  // ---- general.* and the architecture's hyper-parameters (convert_hf_to_gguf.py order) -------
  w.add_string("general.architecture", arch);
  w.add_string("general.type", "model");
  // general.name: the model directory's name, as convert_hf_to_gguf.py without a model card.
  fs::path model_path = fs::absolute(s.model_name_or_path).lexically_normal();
  if (model_path.filename().empty()) model_path = model_path.parent_path();
  w.add_string("general.name", model_path.filename().string());
  w.add_uint32(arch + ".block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.add_uint32(arch + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_uint32(arch + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_uint32(arch + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_uint32(arch + ".attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.add_uint32(arch + ".attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.add_float32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_float32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_uint32("general.file_type", file_type_of(outtype));
  w.add_uint32("general.quantization_version", 2);  // GGML_QUANT_VERSION

  // ---- tokenizer --------------------------------------------------------------------------------
  const GgufVocab vocab = read_gguf_vocab(s.model_name_or_path, c.vocab_size);
  w.add_string("tokenizer.ggml.model", "gpt2");
  // The Qwen2 pre-tokenizer regex (llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2). convert_hf_to_gguf.py
  // finds it by hashing the tokens of a probe text; refract's tokenizer check (model open)
  // requires the Qwen split regex, so the name is fixed here.
  w.add_string("tokenizer.ggml.pre", "qwen2");
  w.add_string_array("tokenizer.ggml.tokens", vocab.tokens);
  w.add_int32_array("tokenizer.ggml.token_type", vocab.token_types);
  w.add_string_array("tokenizer.ggml.merges", vocab.merges);
  for (const auto& [typ, id] : vocab.special_ids) {
    const std::string key = typ == "pad" ? "padding" : typ == "sep" ? "seperator" : typ == "unk" ? "unknown" : typ;
    w.add_uint32("tokenizer.ggml." + key + "_token_id", static_cast<uint32_t>(id));  // sic: "seperator" (gguf-py)
  }
  if (vocab.add_bos_token >= 0) w.add_bool("tokenizer.ggml.add_bos_token", vocab.add_bos_token == 1);
  if (vocab.add_eos_token >= 0) w.add_bool("tokenizer.ggml.add_eos_token", vocab.add_eos_token == 1);
  if (!vocab.chat_template.empty()) w.add_string("tokenizer.chat_template", vocab.chat_template);

  // ---- tensors: the language model only -----------------------------------------------------------
  std::vector<torch::Tensor> keep;  // the float32 buffers the writer reads at write()
  int64_t fallback_f16 = 0, visual = 0;
  for (const auto& item : m.model->named_parameters()) {
    const std::string& hf = item.key();
    if (hf.compare(0, 7, "visual.") == 0) {
      ++visual;
      continue;
    }
    torch::Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    const std::string gname = gguf_tensor_name(hf);
    // ref: ModelBase.prepare_tensors: 1-D tensors and norms stay F32; Q8_0 falls back to F16
    // when a row is not a multiple of the block size.
    TensorType type = outtype;
    const bool norm = gname.size() >= 12 && gname.compare(gname.size() - 12, 12, "_norm.weight") == 0;
    if (t.dim() <= 1 || norm) {
      type = TensorType::kF32;
    } else if (type == TensorType::kQ8_0 && t.size(-1) % io::gguf::kQ8_0BlockSize != 0) {
      type = TensorType::kF16;
      ++fallback_f16;
    }
    w.add_tensor(gname, t.sizes().vec(), t.data_ptr<float>(), type);
    keep.push_back(t);
  }
  REFRACT_CHECK(c.tie_word_embeddings || w.tensor_count() > 0) << "no language-model tensor found";
  w.write(s.output);
  LOG_INFO("exported {}{}{} -> {} (GGUF qwen2, {} tensors, {} 2-D weights{}; vision tower not exported: {} tensors)",
           s.model_name_or_path, s.adapter.empty() ? "" : " + ", s.adapter, s.output, w.tensor_count(),
           io::gguf::tensor_type_name(outtype),
           fallback_f16 ? fmt::format(", {} as F16 (rows not a multiple of 32)", fallback_f16) : std::string(),
           visual);
}

}  // namespace refract::commands
