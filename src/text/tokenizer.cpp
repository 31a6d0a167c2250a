// Loading tokenizer.json and running the HF pipeline: added tokens -> normalizer (NFC) ->
// Split pre-tokenizer -> byte-level BPE; decode through the ByteLevel decoder.
#include "text/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <unordered_map>

#include "common/atomic_file.h"
#include "common/check.h"
#include "text/added_vocabulary.h"
#include "text/bpe.h"
#include "text/byte_level.h"
#include "text/nfc.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace refract::text {

using nlohmann::json;

struct Tokenizer::Impl {
  std::string path;
  bool nfc = false;
  std::unique_ptr<RegexSplitter> splitter;  // null: the whole normalised stretch is one piece
  std::unique_ptr<BpeModel> bpe;
  AddedTokenMatcher raw_added;         // normalized == false: matched on the raw text
  AddedTokenMatcher normalized_added;  // normalized == true: matched after NFC
  std::unordered_map<std::string, int32_t> token_to_id;  // vocab + added, HF token strings
  std::vector<std::string> id_to_token;
  std::vector<std::string> id_to_bytes;  // what the ByteLevel decoder emits for each id
  std::vector<uint8_t> is_special;
  std::optional<int32_t> eos, pad;

  void encode_text(std::string_view text, std::vector<int32_t>& ids) const;
};

namespace {

std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return "";
}

// tokenizer.json normalizer: NFC (Qwen) or none.
bool parse_normalizer(const json& n, const std::string& where) {
  if (n.is_null()) return false;
  const std::string type = n.value("type", "");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const json& item : n.at("normalizers")) nfc = parse_normalizer(item, where) || nfc;
    return nfc;
  }
  REFRACT_FAIL() << where << ": normalizer type '" << type << "' is not supported (only NFC)";
}

// The GPT-2 pattern ByteLevel(use_regex=true) applies when no Split is given.
// ref: tokenizers pre_tokenizers/byte_level.rs
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void parse_pre_tokenizer(const json& p, const std::string& where, std::string& pattern) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    for (const json& item : p.at("pretokenizers")) parse_pre_tokenizer(item, where, pattern);
    return;
  }
  if (type == "Split") {
    REFRACT_CHECK(pattern.empty()) << where << ": only one Split pre-tokenizer is supported";
    const json& pat = p.at("pattern");
    if (pat.contains("Regex")) {
      pattern = pat["Regex"].get<std::string>();
    } else {
      // A literal string: escape it for the regex engine.
      pattern = "\\Q" + pat.at("String").get<std::string>() + "\\E";
    }
    REFRACT_CHECK(p.value("behavior", "") == "Isolated")
        << where << ": Split behavior '" << p.value("behavior", "") << "' is not supported (Isolated)";
    REFRACT_CHECK(!p.value("invert", false)) << where << ": Split invert=true is not supported";
    return;
  }
  if (type == "ByteLevel") {
    REFRACT_CHECK(!p.value("add_prefix_space", false))
        << where << ": ByteLevel add_prefix_space=true is not supported";
    if (p.value("use_regex", true)) {
      REFRACT_CHECK(pattern.empty()) << where << ": Split plus ByteLevel(use_regex) is not supported";
      pattern = kGpt2Pattern;
    }
    return;
  }
  REFRACT_FAIL() << where << ": pre_tokenizer type '" << type << "' is not supported";
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::string json_path = path, dir;
  if (fs::is_directory(path)) {
    json_path = (fs::path(path) / "tokenizer.json").string();
    dir = path;
  } else {
    dir = fs::path(path).parent_path().string();
  }
  json tj;
  try {
    tj = json::parse(read_file(json_path));
  } catch (const json::exception& e) {
    REFRACT_FAIL() << json_path << ": not valid JSON: " << e.what();
  }
  auto impl = std::make_unique<Impl>();
  impl->path = json_path;
  try {
    impl->nfc = parse_normalizer(tj.value("normalizer", json()), json_path);
    std::string pattern;
    parse_pre_tokenizer(tj.value("pre_tokenizer", json()), json_path, pattern);
    if (!pattern.empty()) impl->splitter = std::make_unique<RegexSplitter>(pattern);
    const json& dec = tj.value("decoder", json());
    REFRACT_CHECK(dec.is_null() || dec.value("type", "") == "ByteLevel")
        << json_path << ": decoder '" << dec.value("type", "") << "' is not supported (ByteLevel)";

    const json& model = tj.at("model");
    REFRACT_CHECK(model.value("type", "BPE") == "BPE")
        << json_path << ": model type '" << model.value("type", "") << "' is not supported (BPE)";
    REFRACT_CHECK(model.value("continuing_subword_prefix", json("")).is_null() ||
                  model.value("continuing_subword_prefix", json("")) == "")
        << json_path << ": BPE continuing_subword_prefix is not supported";
    REFRACT_CHECK(!model.value("byte_fallback", false)) << json_path << ": BPE byte_fallback is not supported";

    // Vocabulary (byte-level strings) -> ids; ids -> raw bytes for the model.
    const json& vocab = model.at("vocab");
    int32_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) max_id = std::max(max_id, it.value().get<int32_t>());
    const json& added = tj.value("added_tokens", json::array());
    for (const json& a : added) max_id = std::max(max_id, a.at("id").get<int32_t>());
    const size_t n = static_cast<size_t>(max_id + 1);
    impl->id_to_token.assign(n, "");
    impl->id_to_bytes.assign(n, "");
    impl->is_special.assign(n, 0);
    std::vector<std::string> model_bytes(n);
    impl->token_to_id.reserve(vocab.size() + added.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int32_t id = it.value().get<int32_t>();
      REFRACT_CHECK(id >= 0) << json_path << ": negative id for token " << it.key();
      impl->id_to_token[id] = it.key();
      impl->token_to_id.emplace(it.key(), id);
      model_bytes[id] = byte_level_decode(it.key());
      impl->id_to_bytes[id] = model_bytes[id];
    }
    std::vector<std::pair<int32_t, int32_t>> merges;
    const json& mj = model.at("merges");
    merges.reserve(mj.size());
    auto id_of = [&](const std::string& tok) {
      auto it = impl->token_to_id.find(tok);
      REFRACT_CHECK(it != impl->token_to_id.end()) << json_path << ": merge uses unknown token '" << tok << "'";
      return it->second;
    };
    for (const json& m : mj) {
      std::string a, b;
      if (m.is_array()) {
        a = m.at(0).get<std::string>();
        b = m.at(1).get<std::string>();
      } else {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        REFRACT_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos)
            << json_path << ": merge '" << s << "' is not two tokens";
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      }
      merges.emplace_back(id_of(a), id_of(b));
    }
    impl->bpe = std::make_unique<BpeModel>(std::move(model_bytes), merges);

    std::vector<AddedToken> raw, normalized;
    for (const json& a : added) {
      AddedToken t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.single_word = a.value("single_word", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.normalized = a.value("normalized", !a.value("special", false));
      t.special = a.value("special", false);
      impl->id_to_token[t.id] = t.content;
      impl->token_to_id[t.content] = t.id;
      impl->id_to_bytes[t.id] = byte_level_decode(t.content);
      impl->is_special[t.id] = t.special ? 1 : 0;
      (t.normalized ? normalized : raw).push_back(std::move(t));
    }
    impl->raw_added = AddedTokenMatcher(std::move(raw));
    impl->normalized_added = AddedTokenMatcher(std::move(normalized));
  } catch (const json::exception& e) {
    REFRACT_FAIL() << json_path << ": unexpected structure: " << e.what();
  }

  const std::string cfg_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (std::filesystem::exists(cfg_path)) {
    try {
      const json cfg = json::parse(read_file(cfg_path));
      auto lookup = [&](const char* key) -> std::optional<int32_t> {
        const std::string tok = config_token(cfg, key);
        if (tok.empty()) return std::nullopt;
        auto it = impl->token_to_id.find(tok);
        REFRACT_CHECK(it != impl->token_to_id.end())
            << cfg_path << ": " << key << " '" << tok << "' is not in the vocabulary";
        return it->second;
      };
      impl->eos = lookup("eos_token");
      impl->pad = lookup("pad_token");
    } catch (const json::exception& e) {
      REFRACT_FAIL() << cfg_path << ": " << e.what();
    }
  }
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<std::string_view> pieces;
  auto run_model = [&](std::string_view normalized) {
    pieces.clear();
    if (splitter) {
      splitter->split(normalized, pieces);
    } else {
      pieces.push_back(normalized);
    }
    for (std::string_view p : pieces) bpe->encode_word(p, ids);
  };
  const std::string normalized = nfc ? nfc_unicode9(text) : std::string(text);
  if (normalized_added.empty()) {
    run_model(normalized);
    return;
  }
  for (const TextSplit& s : normalized_added.split(normalized)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      run_model(std::string_view(normalized).substr(s.begin, s.end - s.begin));
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  REFRACT_CHECK(utf8_is_valid(text)) << "tokenizer input is not valid UTF-8";
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (impl_->raw_added.empty()) {
    impl_->encode_text(text, ids);
    return ids;
  }
  // ref: added_vocabulary.rs extract_and_normalize: non-normalized added tokens are cut out of
  // the raw text first; only the stretches between them are normalised.
  for (const TextSplit& s : impl_->raw_added.split(text)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      impl_->encode_text(text.substr(s.begin, s.end - s.begin), ids);
    }
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    // ref: tokenizer/mod.rs decode: ids with no token are skipped.
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_bytes.size()) continue;
    if (impl_->id_to_token[id].empty()) continue;
    if (skip_special_tokens && impl_->is_special[id]) continue;
    bytes += impl_->id_to_bytes[id];
  }
  return utf8_lossy(bytes);
}

int32_t Tokenizer::token_to_id(const std::string& token) const {
  auto it = impl_->token_to_id.find(token);
  return it == impl_->token_to_id.end() ? -1 : it->second;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return "";
  return impl_->id_to_token[id];
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_bytes.size()) return "";
  return impl_->id_to_bytes[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }
std::optional<int32_t> Tokenizer::eos_token_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_token_id() const { return impl_->pad; }

}  // namespace refract::text
