// Completion text as streamed deltas (torch-free). The concatenation of every delta is exactly
// the content of the non-streamed response: both go through finish().
//   - a byte-level token can end inside a UTF-8 character: those bytes wait for the next token;
//   - with stop strings, the last (longest stop - 1) bytes wait, since they may begin a stop
//     string the next token completes (OpenAI: the content never contains the stop sequence).
#pragma once
#include <string>
#include <vector>

namespace refract::serve {

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence.
size_t utf8_complete_prefix(const std::string& s);

class DeltaText {
 public:
  explicit DeltaText(std::vector<std::string> stop = {});
  // `text` = the whole completion decoded so far (eos excluded). Returns the new part that is
  // safe to send ("" if none).
  std::string update(const std::string& text);
  // The completion is over: the rest of `text`, cut before the first stop string.
  std::string finish(const std::string& text);
  // The content: `text` cut before the first stop string.
  std::string content(const std::string& text) const;

 private:
  std::vector<std::string> stop_;
  size_t hold_ = 0;  // longest stop string - 1
  size_t sent_ = 0;
};

}  // namespace refract::serve
