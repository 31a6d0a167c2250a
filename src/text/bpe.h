// The BPE model of tokenizer.json ("type": "BPE"), on raw bytes: the byte-level alphabet is
// undone at load time, so a word's initial symbols are its bytes and merges join byte strings.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace refract::text {

class BpeModel {
 public:
  // `vocab_bytes[id]` is the raw byte string of token `id` ("" for ids that are not BPE tokens);
  // `merges` are pairs of ids in rank order (rank 0 first); each merged string must be a token.
  BpeModel(std::vector<std::string> vocab_bytes,
           const std::vector<std::pair<int32_t, int32_t>>& merges);
  ~BpeModel();
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized piece (raw bytes). Thread-safe; uses a word cache.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // The ids the merges produce, without the cache (for tests and the trainer).
  std::vector<int32_t> merge_word(std::string_view word) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::text
