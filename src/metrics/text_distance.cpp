#include "metrics/text_distance.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace refract::metrics {

std::vector<uint32_t> utf8_codepoints(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = 0;
    uint32_t cp = 0;
    if (c < 0x80) len = 1, cp = c;
    else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && len > 1) {
      // Reject overlong forms and surrogates so each code point has one encoding.
      static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      i += 1;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

int64_t levenshtein(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  const std::vector<uint32_t>& s = a.size() < b.size() ? b : a;  // longer
  const std::vector<uint32_t>& t = a.size() < b.size() ? a : b;  // shorter: one row
  std::vector<int64_t> row(t.size() + 1);
  for (size_t j = 0; j <= t.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= s.size(); ++i) {
    int64_t diag = row[0];
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= t.size(); ++j) {
      const int64_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (s[i - 1] == t[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[t.size()];
}

int64_t levenshtein(std::string_view a, std::string_view b) {
  return levenshtein(utf8_codepoints(a), utf8_codepoints(b));
}

double edit_similarity(std::string_view pred, std::string_view ref) {
  const auto p = utf8_codepoints(pred), r = utf8_codepoints(ref);
  const size_t m = std::max(p.size(), r.size());
  if (m == 0) return 1.0;
  return 1.0 - static_cast<double>(levenshtein(p, r)) / static_cast<double>(m);
}

double char_error_rate(std::string_view pred, std::string_view ref) {
  const auto p = utf8_codepoints(pred), r = utf8_codepoints(ref);
  if (r.empty()) return p.empty() ? 0.0 : 1.0;
  return static_cast<double>(levenshtein(p, r)) / static_cast<double>(r.size());
}

// Longest common subsequence length (indel distance = |a| + |b| - 2 LCS).
static int64_t lcs_length(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<int64_t> row(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diag = 0;
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = a[i - 1] == b[j - 1] ? diag + 1 : std::max(row[j], row[j - 1]);
      diag = up;
    }
  }
  return row[b.size()];
}

double indel_ratio(std::string_view a, std::string_view b) {
  const auto x = utf8_codepoints(a), y = utf8_codepoints(b);
  const size_t total = x.size() + y.size();
  if (total == 0) return 1.0;
  const int64_t dist = static_cast<int64_t>(total) - 2 * lcs_length(x, y);
  return 1.0 - static_cast<double>(dist) / static_cast<double>(total);
}

double token_set_f1(std::string_view pred, std::string_view ref) {
  auto tokens = [](std::string_view s) {
    std::set<std::string> out;
    std::istringstream in{std::string(s)};
    std::string t;
    while (in >> t) out.insert(t);
    return out;
  };
  const auto p = tokens(pred), r = tokens(ref);
  if (p.empty() && r.empty()) return 1.0;
  if (p.empty() || r.empty()) return 0.0;
  size_t common = 0;
  for (const auto& t : p) common += r.count(t);
  if (common == 0) return 0.0;
  const double precision = static_cast<double>(common) / p.size();
  const double recall = static_cast<double>(common) / r.size();
  return 2 * precision * recall / (precision + recall);
}

}  // namespace refract::metrics
