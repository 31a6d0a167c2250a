// Added tokens of tokenizer.json: matched whole in the text before the model sees it, with
// HF's flags (single_word, lstrip, rstrip, normalized, special).
// ref: tokenizers/src/tokenizer/added_vocabulary.rs
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace refract::text {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;  // only match when not inside a word
  bool lstrip = false;       // swallow the whitespace on its left
  bool rstrip = false;       // swallow the whitespace on its right
  bool normalized = false;   // matched against the normalised text (else the raw text)
  bool special = false;      // dropped by decode(skip_special_tokens=true)
};

// A stretch of the text: an added token (id >= 0) or plain text to tokenise (id == -1).
struct TextSplit {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

// Leftmost-longest matching of a set of added tokens (HF builds one aho-corasick automaton
// with MatchKind::LeftmostLongest per set: the non-normalized and the normalized tokens).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Cuts `text` into splits covering it in order (empty text -> no splits).
  std::vector<TextSplit> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::vector<uint32_t>> by_first_byte_;  // token indices, longest first
};

}  // namespace refract::text
