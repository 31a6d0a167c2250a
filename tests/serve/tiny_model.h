// A servable copy of the tiny Qwen2.5-VL fixture (tests/fixtures/qwen2_5_vl/tiny, vocab 4096,
// special ids remapped to 4000..4014) plus a tokenizer.json whose ids agree with it.
// The tokenizer is byte-level BPE in Qwen's layout: ids 0..255 the byte symbols, 256..3999
// merges of two letters / digits (so most generated ids decode to visible text), 4000.. the
// added tokens at the ids config.json names.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"

namespace refract::serve::testing {

inline const std::string kTinyFixture = std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl/tiny";
// The tiny Qwen2-VL fixture (model_type qwen2_vl): the same vocabulary and special ids.
inline const std::string kTinyQ2Fixture = std::string(REFRACT_FIXTURES_DIR) + "/qwen2_vl/tiny_q2";

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards.
inline std::vector<std::string> byte_level_alphabet() {
  std::vector<int> bs, cs;
  for (int b = 0; b < 256; ++b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) bs.push_back(b);
  }
  cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  }
  std::vector<std::string> out(256);
  for (size_t i = 0; i < bs.size(); ++i) {
    const int cp = cs[i];
    std::string utf8;
    if (cp < 0x80) {
      utf8 += char(cp);
    } else {
      utf8 += char(0xC0 | (cp >> 6));
      utf8 += char(0x80 | (cp & 0x3F));
    }
    out[bs[i]] = utf8;
  }
  return out;
}

inline std::string tiny_tokenizer_json() {
  using json = nlohmann::json;
  const std::vector<std::string> sym = byte_level_alphabet();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[sym[b]] = b;
  std::string chars;
  for (char c = 'a'; c <= 'z'; ++c) chars += c;
  for (char c = 'A'; c <= 'Z'; ++c) chars += c;
  for (char c = '0'; c <= '9'; ++c) chars += c;
  json merges = json::array();
  int id = 256;
  for (char x : chars) {
    for (char y : chars) {
      if (id == 4000) break;
      merges.push_back(std::string(1, x) + " " + std::string(1, y));
      vocab[std::string(1, x) + std::string(1, y)] = id++;
    }
  }
  const std::vector<std::pair<int, std::string>> added = {
      {4000, "<|endoftext|>"},  {4001, "<|im_start|>"},    {4002, "<|im_end|>"},     {4003, "<|object_ref_start|>"},
      {4004, "<|object_ref_end|>"}, {4005, "<|box_start|>"}, {4006, "<|box_end|>"},   {4007, "<|quad_start|>"},
      {4008, "<|quad_end|>"},   {4009, "<|reserved_0|>"},  {4010, "<|vision_start|>"}, {4011, "<|vision_end|>"},
      {4012, "<|vision_pad|>"}, {4013, "<|image_pad|>"},   {4014, "<|video_pad|>"}};
  json added_tokens = json::array();
  for (const auto& [i, content] : added) {
    added_tokens.push_back({{"id", i}, {"content", content}, {"single_word", false}, {"lstrip", false},
                            {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  // ref: Qwen2.5 tokenizer.json pre_tokenizer (Split on the Qwen regex, then ByteLevel).
  const std::string regex =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  const json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      byte_level})}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}}};
  return tj.dump();
}

// Copies a tiny checkpoint (default: the Qwen2.5-VL one) into `dir` and adds tokenizer.json +
// tokenizer_config.json.
inline void write_tiny_serving_model(const std::string& dir, const std::string& fixture = kTinyFixture) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    fs::copy_file(fs::path(fixture) / f, fs::path(dir) / f, fs::copy_options::overwrite_existing);
  write_file_atomic((fs::path(dir) / "tokenizer.json").string(), tiny_tokenizer_json());
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(),
                    R"({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})");
}

}  // namespace refract::serve::testing
