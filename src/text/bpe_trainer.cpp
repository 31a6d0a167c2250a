#include "text/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/check.h"
#include "text/added_vocabulary.h"
#include "text/byte_level.h"
#include "text/nfc.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace refract::text {

namespace {

using ojson = nlohmann::ordered_json;

// ref: Qwen2.5 tokenizer.json pre_tokenizer Split pattern.
constexpr const char* kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr int kNumSpecial = 14;  // <|endoftext|> .. <|video_pad|> are special; the rest not

// ref: Qwen2-VL chat_template (processor), with the default system prompt.
constexpr const char* kChatTemplate =
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

ojson byte_level_json() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

ojson added_token_json(int64_t id, const std::string& content, bool special) {
  return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", false}, {"special", special}};
}

using Pair = std::pair<int32_t, int32_t>;
uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

const std::vector<std::string>& qwen_added_token_names() {
  static const std::vector<std::string> names = {
      "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
      "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
      "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</think>",
      "<answer>", "</answer>"};
  return names;
}

void build_byte_level_bpe_tokenizer(const std::vector<std::string>& corpus, int64_t vocab_size,
                                    const std::string& output_dir) {
  const auto& added = qwen_added_token_names();
  const int64_t n_added = static_cast<int64_t>(added.size());
  REFRACT_CHECK(vocab_size >= 256 + n_added)
      << "vocab_size " << vocab_size << " is below the 256 byte tokens + " << n_added << " added tokens";

  // 1. Words (pre-tokenized pieces, raw bytes) and their counts; std::map for a fixed order.
  std::vector<AddedToken> cut;
  for (const auto& name : added) cut.push_back({0, name, false, false, false, false, true});
  const AddedTokenMatcher matcher(std::move(cut));
  const RegexSplitter splitter(kQwenPattern);
  std::map<std::string, int64_t> word_counts;
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < corpus.size(); ++i) {
    REFRACT_CHECK(utf8_is_valid(corpus[i])) << "corpus line " << i << " is not valid UTF-8";
    for (const TextSplit& s : matcher.split(corpus[i])) {
      if (s.id >= 0) continue;
      const std::string normalized = nfc_unicode9(std::string_view(corpus[i]).substr(s.begin, s.end - s.begin));
      pieces.clear();
      splitter.split(normalized, pieces);
      for (std::string_view p : pieces) ++word_counts[std::string(p)];
    }
  }

  // 2. Byte tokens: ids in the order of their byte-level characters (GPT-2 order).
  const auto& b2c = byte_to_char();
  std::vector<int> bytes_by_char(256);
  for (int b = 0; b < 256; ++b) bytes_by_char[b] = b;
  std::sort(bytes_by_char.begin(), bytes_by_char.end(), [&](int x, int y) { return b2c[x] < b2c[y]; });
  std::vector<std::string> token_bytes;  // id -> raw bytes
  std::unordered_map<std::string, int32_t> id_of_bytes;
  int32_t byte_id[256];
  for (int i = 0; i < 256; ++i) {
    const int b = bytes_by_char[i];
    byte_id[b] = i;
    token_bytes.emplace_back(1, static_cast<char>(b));
    id_of_bytes.emplace(token_bytes.back(), i);
  }

  // 3. Merges. Pair counts are kept incrementally; a max-heap with lazy deletion picks the
  // most frequent pair (ties: smallest ids) each round.
  struct Word {
    std::vector<int32_t> ids;
    int64_t count;
  };
  std::vector<Word> words;
  words.reserve(word_counts.size());
  for (const auto& [w, c] : word_counts) {
    Word word{{}, c};
    for (unsigned char ch : w) word.ids.push_back(byte_id[ch]);
    words.push_back(std::move(word));
  }
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::unordered_set<int32_t>> pair_words;
  auto add_pairs = [&](int32_t wi, int64_t sign) {
    const Word& w = words[wi];
    for (size_t i = 0; i + 1 < w.ids.size(); ++i) {
      const uint64_t k = pair_key(w.ids[i], w.ids[i + 1]);
      pair_count[k] += sign * w.count;
      if (sign > 0) pair_words[k].insert(wi);
    }
  };
  for (int32_t wi = 0; wi < static_cast<int32_t>(words.size()); ++wi) add_pairs(wi, +1);
  struct Cand {
    int64_t count;
    uint64_t key;
    bool operator<(const Cand& o) const { return count != o.count ? count < o.count : key > o.key; }
  };
  std::priority_queue<Cand> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<Pair> merges;
  const int64_t max_bpe_tokens = vocab_size - n_added;
  while (static_cast<int64_t>(token_bytes.size()) < max_bpe_tokens && !heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.key);
    if (it == pair_count.end() || it->second != top.count) continue;  // stale entry
    if (top.count <= 0) break;
    const int32_t a = static_cast<int32_t>(top.key >> 32), b = static_cast<int32_t>(top.key & 0xffffffffu);
    const std::string merged = token_bytes[a] + token_bytes[b];
    int32_t new_id;
    if (auto e = id_of_bytes.find(merged); e != id_of_bytes.end()) {
      new_id = e->second;  // the same string reached through another split: reuse its id
    } else {
      new_id = static_cast<int32_t>(token_bytes.size());
      token_bytes.push_back(merged);
      id_of_bytes.emplace(merged, new_id);
    }
    merges.emplace_back(a, b);
    std::vector<int32_t> affected(pair_words[top.key].begin(), pair_words[top.key].end());
    std::sort(affected.begin(), affected.end());
    std::unordered_set<uint64_t> touched;
    for (int32_t wi : affected) {
      Word& w = words[wi];
      add_pairs(wi, -1);
      for (size_t i = 0; i + 1 < w.ids.size(); ++i) touched.insert(pair_key(w.ids[i], w.ids[i + 1]));
      std::vector<int32_t> next;
      next.reserve(w.ids.size());
      for (size_t i = 0; i < w.ids.size(); ++i) {
        if (i + 1 < w.ids.size() && w.ids[i] == a && w.ids[i + 1] == b) {
          next.push_back(new_id);
          ++i;
        } else {
          next.push_back(w.ids[i]);
        }
      }
      w.ids = std::move(next);
      add_pairs(wi, +1);
      for (size_t i = 0; i + 1 < w.ids.size(); ++i) touched.insert(pair_key(w.ids[i], w.ids[i + 1]));
    }
    pair_count.erase(top.key);
    std::vector<uint64_t> keys(touched.begin(), touched.end());
    std::sort(keys.begin(), keys.end());
    for (uint64_t k : keys) {
      auto pc = pair_count.find(k);
      if (pc != pair_count.end() && pc->second > 0) heap.push({pc->second, k});
    }
  }

  // 4. tokenizer.json
  ojson vocab = ojson::object();
  for (size_t id = 0; id < token_bytes.size(); ++id) vocab[byte_level_encode(token_bytes[id])] = id;
  ojson merges_json = ojson::array();
  for (const auto& [a, b] : merges)
    merges_json.push_back({byte_level_encode(token_bytes[a]), byte_level_encode(token_bytes[b])});
  ojson added_json = ojson::array();
  ojson added_decoder = ojson::object();
  const int64_t first_added = static_cast<int64_t>(token_bytes.size());
  for (int64_t i = 0; i < n_added; ++i) {
    const bool special = i < kNumSpecial;
    added_json.push_back(added_token_json(first_added + i, added[i], special));
    ojson entry = added_token_json(first_added + i, added[i], special);
    entry.erase("id");
    added_decoder[std::to_string(first_added + i)] = entry;
  }
  ojson tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = added_json;
  tj["normalizer"] = {{"type", "NFC"}};
  tj["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", kQwenPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
        byte_level_json()}}};
  tj["post_processor"] = byte_level_json();
  tj["decoder"] = byte_level_json();
  tj["model"] = {{"type", "BPE"},          {"dropout", nullptr},          {"unk_token", nullptr},
                 {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                 {"byte_fallback", false}, {"ignore_merges", false},    {"vocab", vocab},
                 {"merges", merges_json}};

  // 5. tokenizer_config.json (Qwen2Tokenizer fields)
  ojson cfg;
  cfg["add_bos_token"] = false;
  cfg["add_prefix_space"] = false;
  cfg["added_tokens_decoder"] = added_decoder;
  cfg["additional_special_tokens"] = ojson(std::vector<std::string>(added.begin() + 1, added.begin() + kNumSpecial));
  cfg["bos_token"] = nullptr;
  cfg["chat_template"] = kChatTemplate;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["eos_token"] = "<|im_end|>";
  cfg["errors"] = "replace";
  cfg["model_max_length"] = 32768;
  cfg["pad_token"] = "<|endoftext|>";
  cfg["split_special_tokens"] = false;
  cfg["tokenizer_class"] = "Qwen2Tokenizer";
  cfg["unk_token"] = nullptr;

  std::filesystem::create_directories(output_dir);
  const std::filesystem::path dir(output_dir);
  write_file_atomic((dir / "tokenizer.json").string(), tj.dump(2) + "\n");
  write_file_atomic((dir / "tokenizer_config.json").string(), cfg.dump(2) + "\n");
}

}  // namespace refract::text
