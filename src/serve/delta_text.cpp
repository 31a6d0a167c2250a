#include "serve/delta_text.h"

#include <algorithm>

namespace refract::serve {

size_t utf8_complete_prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t i = s.size();
  for (int back = 0; back < 4 && i > 0; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) {  // a lead byte (or ASCII)
      const size_t lead = i - 1;
      const size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
      return s.size() - lead >= need ? s.size() : lead;
    }
    --i;
  }
  return s.size();  // not UTF-8 anyway: nothing to wait for
}

DeltaText::DeltaText(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const std::string& s : stop_) hold_ = std::max(hold_, s.empty() ? 0 : s.size() - 1);
}

std::string DeltaText::content(const std::string& text) const {
  size_t cut = text.size();
  for (const std::string& s : stop_)
    if (!s.empty()) cut = std::min(cut, text.find(s));
  return text.substr(0, cut);
}

std::string DeltaText::update(const std::string& text) {
  size_t limit = utf8_complete_prefix(text);
  if (hold_ > 0) {
    limit = std::min(limit, text.size() > hold_ ? text.size() - hold_ : 0);
    while (limit > 0 && (static_cast<unsigned char>(text[limit]) & 0xC0) == 0x80) --limit;  // character boundary
  }
  if (limit <= sent_) return "";
  std::string delta = text.substr(sent_, limit - sent_);
  sent_ = limit;
  return delta;
}

std::string DeltaText::finish(const std::string& text) {
  const std::string all = content(text);
  std::string rest = all.size() > sent_ ? all.substr(sent_) : "";
  sent_ = std::max(sent_, all.size());
  return rest;
}

}  // namespace refract::serve
