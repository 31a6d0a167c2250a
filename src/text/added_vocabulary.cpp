#include "text/added_vocabulary.h"

#include <algorithm>
#include <cstring>

#include "text/utf8.h"

namespace refract::text {

namespace {
bool is_word_char(char32_t c) { return c == '_' || is_unicode_alphanumeric(c); }
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens)
    : tokens_(std::move(tokens)), by_first_byte_(256) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

std::vector<TextSplit> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSplit> out;
  size_t start_offset = 0;  // end of the previous split
  size_t i = 0;
  while (i < text.size()) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (uint32_t k : cands) {
      const std::string& c = tokens_[k].content;
      if (c.size() <= text.size() - i && std::memcmp(text.data() + i, c.data(), c.size()) == 0) {
        hit = &tokens_[k];  // longest first
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    i = stop;  // non-overlapping matches: a rejected match is not retried shorter
    if (hit->single_word) {
      const bool start_ok = start == 0 || !is_word_char(utf8_prev(text, start));
      size_t s = stop;
      const bool stop_ok = stop == text.size() || !is_word_char(utf8_next(text, s));
      if (!start_ok || !stop_ok) continue;
    }
    if (hit->lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t p = s - 1;
        while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
        size_t q = p;
        if (!is_unicode_whitespace(utf8_next(text, q))) break;
        s = p;
      }
      // ref: added_vocabulary.rs: spaces already taken by the previous match stay there.
      start = std::max(s, start_offset);
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        size_t q = stop;
        if (!is_unicode_whitespace(utf8_next(text, q))) break;
        stop = q;
      }
      i = stop;
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, hit->id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
  return out;
}

}  // namespace refract::text
