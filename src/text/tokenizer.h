// Hugging Face tokenizer.json (byte-level BPE as in Qwen2 / Qwen2.5 / Qwen3), exactly as
// HF `tokenizers` encodes and decodes. Special-token ids always come from the files.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace refract::text {

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a directory holding tokenizer.json (and, optionally,
  // tokenizer_config.json for eos / pad tokens).
  static Tokenizer from_file(const std::string& path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special_tokens=false semantics: nothing is prepended or appended.
  std::vector<int32_t> encode(std::string_view text) const;
  // skip_special_tokens drops tokens flagged special (ids >= 151657 in Qwen are not special).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // -1 when the token is not in the vocabulary (added tokens included).
  int32_t token_to_id(const std::string& token) const;
  std::string id_to_token(int32_t id) const;
  int64_t vocab_size() const;  // largest id + 1, added tokens included
  // The raw bytes token `id` stands for (byte-level alphabet undone; an added token's content).
  // Concatenating them over encode(text) gives the NFC-normalised text. "" for unknown ids.
  std::string token_bytes(int32_t id) const;

  std::optional<int32_t> eos_token_id() const;  // tokenizer_config.json eos_token
  std::optional<int32_t> pad_token_id() const;  // tokenizer_config.json pad_token

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::text
