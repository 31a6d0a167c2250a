#include "rewards/answer_parser.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "metrics/text_distance.h"

namespace refract::rewards {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::optional<std::string> between(std::string_view text, std::string_view open,
                                   std::string_view close) {
  const size_t b = text.find(open);
  if (b == std::string_view::npos) return std::nullopt;
  const size_t start = b + open.size();
  const size_t e = text.find(close, start);
  return std::string(text.substr(start, e == std::string_view::npos ? std::string_view::npos
                                                                    : e - start));
}

// ---------------------------------------------------------------------------------------
// Lenient JSON reader. Depth-limited so hostile input cannot exhaust the stack.
class LenientJson {
 public:
  explicit LenientJson(std::string_view s) : s_(s) {}

  std::optional<nlohmann::json> value(int depth) {
    skip_ws();
    if (eof() || depth > kMaxDepth) return std::nullopt;
    const char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"' || c == '\'') {
      auto str = string();
      if (!str) return std::nullopt;
      return nlohmann::json(*str);
    }
    if (c == '-' || c == '+' || c == '.' || is_digit(c)) return number();
    return word();
  }

  size_t pos() const { return i_; }

 private:
  static constexpr int kMaxDepth = 64;
  bool eof() const { return i_ >= s_.size(); }
  void skip_ws() {
    while (!eof() && is_space(s_[i_])) ++i_;
  }

  std::optional<nlohmann::json> object(int depth) {
    ++i_;  // '{'
    nlohmann::json obj = nlohmann::json::object();
    while (true) {
      skip_ws();
      if (eof()) return std::nullopt;  // truncated object: unusable
      if (s_[i_] == '}') {
        ++i_;
        return obj;
      }
      if (s_[i_] == ',') {  // tolerate stray / trailing commas
        ++i_;
        continue;
      }
      std::optional<std::string> key;
      if (s_[i_] == '"' || s_[i_] == '\'') key = string();
      else key = bare_word();
      if (!key) return std::nullopt;
      skip_ws();
      if (eof() || s_[i_] != ':') return std::nullopt;
      ++i_;
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      obj[*key] = std::move(*v);
    }
  }

  std::optional<nlohmann::json> array(int depth) {
    ++i_;  // '['
    nlohmann::json arr = nlohmann::json::array();
    while (true) {
      skip_ws();
      // ref: Visual-RFT: a truncated list is closed after its last complete element.
      if (eof()) return arr;
      if (s_[i_] == ']') {
        ++i_;
        return arr;
      }
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      auto v = value(depth + 1);
      if (!v) return arr;  // garbage or truncation inside an element: keep what was complete
      arr.push_back(std::move(*v));
    }
  }

  std::optional<std::string> string() {
    const char quote = s_[i_++];
    std::string out;
    while (!eof()) {
      const char c = s_[i_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (eof()) return std::nullopt;
      const char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return std::nullopt;
          const std::string hex(s_.substr(i_, 4));
          char* end = nullptr;
          const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          if (end != hex.c_str() + 4) return std::nullopt;
          i_ += 4;
          append_utf8(out, static_cast<uint32_t>(cp));
          break;
        }
        default: out += e;  // \" \' \\ \/ and unknown escapes keep the character
      }
    }
    return std::nullopt;  // unterminated string
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // lone surrogate halves
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::optional<nlohmann::json> number() {
    const size_t start = i_;
    if (s_[i_] == '-' || s_[i_] == '+') ++i_;
    bool digits = false, is_float = false;
    while (!eof() && is_digit(s_[i_])) ++i_, digits = true;
    if (!eof() && s_[i_] == '.') {
      ++i_;
      is_float = true;
      while (!eof() && is_digit(s_[i_])) ++i_, digits = true;
    }
    if (!digits) return std::nullopt;
    if (!eof() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) ++j;
      if (j < s_.size() && is_digit(s_[j])) {
        i_ = j;
        while (!eof() && is_digit(s_[i_])) ++i_;
        is_float = true;
      }
    }
    // A number cut by truncation ("[12, 3") is still read; the array decides.
    const std::string tok(s_.substr(start, i_ - start));
    if (!is_float) {
      errno = 0;
      const long long v = std::strtoll(tok.c_str(), nullptr, 10);
      if (errno == 0) return nlohmann::json(v);
    }
    const double d = std::strtod(tok.c_str(), nullptr);
    if (!std::isfinite(d)) return std::nullopt;
    return nlohmann::json(d);
  }

  std::optional<std::string> bare_word() {
    const size_t start = i_;
    while (!eof() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
    if (i_ == start) return std::nullopt;
    return std::string(s_.substr(start, i_ - start));
  }

  std::optional<nlohmann::json> word() {
    auto w = bare_word();
    if (!w) return std::nullopt;
    if (*w == "true" || *w == "True") return nlohmann::json(true);
    if (*w == "false" || *w == "False") return nlohmann::json(false);
    if (*w == "null" || *w == "None") return nlohmann::json(nullptr);
    return std::nullopt;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Reads "<ws>number<ws>" at s[i]; advances i.
std::optional<double> read_number_at(std::string_view s, size_t& i) {
  while (i < s.size() && is_space(s[i])) ++i;
  const size_t start = i;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  bool digits = false;
  while (i < s.size() && is_digit(s[i])) ++i, digits = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, digits = true;
  }
  if (!digits) return std::nullopt;
  const std::string tok(s.substr(start, i - start));
  const double d = std::strtod(tok.c_str(), nullptr);
  while (i < s.size() && is_space(s[i])) ++i;
  return d;
}

// Reads "\d+" at s[i] (no sign, no spaces); advances i.
std::optional<double> read_uint_at(std::string_view s, size_t& i) {
  const size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == start) return std::nullopt;
  return std::strtod(std::string(s.substr(start, i - start)).c_str(), nullptr);
}

std::optional<double> json_number(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {  // "12.5" written as a string
    const std::string s = v.get<std::string>();
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && *end == '\0' && std::isfinite(d)) return d;
  }
  return std::nullopt;
}

std::optional<Box> box_from_json(const nlohmann::json& v) {
  if (!v.is_array() || v.size() != 4) return std::nullopt;
  double c[4];
  for (int k = 0; k < 4; ++k) {
    auto d = json_number(v[k]);
    if (!d) return std::nullopt;
    c[k] = *d;
  }
  return Box{c[0], c[1], c[2], c[3]};
}

const nlohmann::json* find_key(const nlohmann::json& obj, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = obj.find(k);
    if (it != obj.end()) return &*it;
  }
  return nullptr;
}

}  // namespace

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::optional<std::string> extract_think(std::string_view text) {
  return between(text, "<think>", "</think>");
}

std::optional<std::string> extract_answer(std::string_view text) {
  return between(text, "<answer>", "</answer>");
}

std::string answer_or_text(std::string_view text) {
  auto a = extract_answer(text);
  return trim(a ? std::string_view(*a) : text);
}

std::string strip_code_fence(std::string_view text) {
  size_t b = text.find("```");
  if (b == std::string_view::npos) return std::string(text);
  b += 3;
  if (text.substr(b, 4) == "json") b += 4;
  const size_t e = text.find("```", b);
  return std::string(text.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
}

std::optional<nlohmann::json> parse_json_lenient(std::string_view text) {
  const std::string body = strip_code_fence(text);
  const size_t start = body.find_first_of("[{");
  if (start == std::string::npos) return std::nullopt;
  LenientJson p(std::string_view(body).substr(start));
  return p.value(0);
}

namespace {
std::vector<Box> find_bracket_boxes(std::string_view text);

// Qwen2-VL's box text "(x1,y1),(x2,y2)" (what <|box_start|>..<|box_end|> holds; GRPO decodes
// without special tokens, so Perception-R1's answers arrive as "label(x1,y1),(x2,y2)").
std::vector<Box> find_corner_pair_boxes(std::string_view text) {
  std::vector<Box> out;
  for (size_t b = text.find('('); b != std::string_view::npos; b = text.find('(', b + 1)) {
    size_t i = b + 1;
    double c[4];
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      if (k == 2) {  // "),(" between the corners
        while (i < text.size() && is_space(text[i])) ++i;
        if (i < text.size() && text[i] == ',') ++i;
        else ok = false;
        while (ok && i < text.size() && is_space(text[i])) ++i;
        if (ok && i < text.size() && text[i] == '(') ++i;
        else ok = false;
      }
      auto d = ok ? read_number_at(text, i) : std::nullopt;
      if (!d) ok = false;
      else c[k] = *d;
      if (ok && k % 2 == 0) {
        if (i < text.size() && text[i] == ',') ++i;
        else ok = false;
      } else if (ok) {
        if (i < text.size() && text[i] == ')') ++i;
        else ok = false;
      }
    }
    if (ok) {
      out.push_back({c[0], c[1], c[2], c[3]});
      b = i - 1;  // continue after this box's second corner
    }
  }
  return out;
}
}  // namespace

std::vector<Box> find_boxes(std::string_view text) {
  std::vector<Box> out = find_bracket_boxes(text);
  // No [x1, y1, x2, y2]: Qwen2-VL's (x1,y1),(x2,y2) corner pairs.
  if (out.empty()) out = find_corner_pair_boxes(text);
  return out;
}

namespace {
std::vector<Box> find_bracket_boxes(std::string_view text) {
  std::vector<Box> out;
  for (size_t b = text.find('['); b != std::string_view::npos; b = text.find('[', b + 1)) {
    size_t i = b + 1;
    double c[4];
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      auto d = read_number_at(text, i);
      if (!d) ok = false;
      else c[k] = *d;
      if (ok && k < 3) {
        if (i < text.size() && text[i] == ',') ++i;
        else ok = false;
      }
    }
    if (ok && i < text.size() && text[i] == ']') out.push_back({c[0], c[1], c[2], c[3]});
  }
  return out;
}
}  // namespace

std::optional<Box> first_int_box(std::string_view text) {
  for (size_t b = text.find('['); b != std::string_view::npos; b = text.find('[', b + 1)) {
    size_t i = b + 1;
    double c[4];
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      if (k > 0) {  // `,\s*` between numbers; no space before the comma or after '['
        if (i < text.size() && text[i] == ',') ++i;
        else ok = false;
        while (ok && i < text.size() && is_space(text[i])) ++i;
      }
      auto d = ok ? read_uint_at(text, i) : std::nullopt;
      if (!d) ok = false;
      else c[k] = *d;
    }
    if (ok && i < text.size() && text[i] == ']') return Box{c[0], c[1], c[2], c[3]};
  }
  return std::nullopt;
}

std::optional<DetItem> det_item_from_json(const nlohmann::json& v) {
  if (v.is_array()) {
    auto b = box_from_json(v);
    if (!b) return std::nullopt;
    return DetItem{*b, "", std::nullopt};
  }
  if (!v.is_object()) return std::nullopt;
  const auto* bj = find_key(v, {"bbox_2d", "bbox", "Position", "position", "box"});
  if (!bj) return std::nullopt;
  auto b = box_from_json(*bj);
  if (!b) return std::nullopt;
  DetItem item{*b, "", std::nullopt};
  if (const auto* l = find_key(v, {"label", "Label", "category", "name"})) {
    if (l->is_string()) item.label = l->get<std::string>();
    else if (!l->is_null()) item.label = l->dump();
  }
  if (const auto* c = find_key(v, {"confidence", "Confidence", "score"})) item.confidence = json_number(*c);
  return item;
}

std::vector<DetItem> parse_qwen2_box_tokens(std::string_view text) {
  static constexpr std::string_view kRefOpen = "<|object_ref_start|>";
  static constexpr std::string_view kRefClose = "<|object_ref_end|>";
  static constexpr std::string_view kBoxOpen = "<|box_start|>";
  static constexpr std::string_view kBoxClose = "<|box_end|>";
  std::vector<DetItem> out;
  std::string label;
  size_t label_end = 0;
  for (size_t b = text.find(kBoxOpen); b != std::string_view::npos; b = text.find(kBoxOpen, b + 1)) {
    // The label is the closest <|object_ref_start|>..<|object_ref_end|> before this box.
    const size_t r = text.rfind(kRefOpen, b);
    if (r != std::string_view::npos && r >= label_end) {
      const size_t re = text.find(kRefClose, r);
      if (re != std::string_view::npos && re < b) {
        label = trim(text.substr(r + kRefOpen.size(), re - r - kRefOpen.size()));
        label_end = re;
      }
    }
    size_t i = b + kBoxOpen.size();
    double c[4];
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      if (k % 2 == 0) {
        if (k == 2) {  // "),(" between the two corners
          while (i < text.size() && is_space(text[i])) ++i;
          if (i < text.size() && text[i] == ',') ++i;
          else ok = false;
        }
        while (ok && i < text.size() && is_space(text[i])) ++i;
        if (ok && i < text.size() && text[i] == '(') ++i;
        else ok = false;
      } else {
        if (i < text.size() && text[i] == ',') ++i;
        else ok = false;
      }
      auto d = ok ? read_number_at(text, i) : std::nullopt;
      if (!d) ok = false;
      else c[k] = *d;
      if (ok && k % 2 == 1) {
        if (i < text.size() && text[i] == ')') ++i;
        else ok = false;
      }
    }
    if (ok && text.substr(i, kBoxClose.size()) == kBoxClose)
      out.push_back({{c[0], c[1], c[2], c[3]}, label, std::nullopt});
  }
  return out;
}

DetList parse_det_items(std::string_view answer) {
  DetList out;
  if (answer.find("<|box_start|>") != std::string_view::npos) {
    out.items = parse_qwen2_box_tokens(answer);
    out.entries = out.items.size();
    out.parsed = !out.items.empty();
    if (out.parsed) return out;
  }
  auto j = parse_json_lenient(answer);
  if (j) {
    out.parsed = true;
    if (j->is_array() && box_from_json(*j)) {  // one bare box
      out.entries = 1;
      out.items.push_back(*det_item_from_json(*j));
      return out;
    }
    const nlohmann::json list = j->is_array() ? *j : nlohmann::json::array({*j});
    for (const auto& el : list) {
      ++out.entries;
      if (auto item = det_item_from_json(el)) out.items.push_back(*item);
    }
    return out;
  }
  for (const auto& b : find_boxes(answer)) out.items.push_back({b, "", std::nullopt});
  out.entries = out.items.size();
  out.parsed = !out.items.empty();
  return out;
}

std::optional<double> parse_number(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && !is_digit(text[i])) ++i;
  if (i == text.size()) return std::nullopt;
  std::string tok;
  if (i > 0 && text[i - 1] == '-') tok += '-';
  size_t j = i;
  while (j < text.size()) {
    if (is_digit(text[j])) {
      tok += text[j++];
    } else if (text[j] == ',' && j + 3 < text.size() && is_digit(text[j + 1]) &&
               is_digit(text[j + 2]) && is_digit(text[j + 3]) &&
               (j + 4 == text.size() || !is_digit(text[j + 4]))) {
      ++j;  // thousands separator: "1,024" but not "1, 2"
    } else {
      break;
    }
  }
  if (j + 1 < text.size() && text[j] == '.' && is_digit(text[j + 1])) {
    tok += text[j++];
    while (j < text.size() && is_digit(text[j])) tok += text[j++];
  }
  if (j + 1 < text.size() && (text[j] == 'e' || text[j] == 'E')) {
    size_t k = j + 1;
    std::string exp = "e";
    if (k < text.size() && (text[k] == '-' || text[k] == '+')) exp += text[k++];
    if (k < text.size() && is_digit(text[k])) {
      while (k < text.size() && is_digit(text[k])) exp += text[k++];
      tok += exp;
    }
  }
  const double d = std::strtod(tok.c_str(), nullptr);
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

std::optional<char> parse_option_letter(std::string_view text_in) {
  // Work on code points: VLM-R1's positions and 20-character windows are in characters.
  std::vector<uint32_t> cps;
  {
    const auto raw = metrics::utf8_codepoints(text_in);
    bool in_space = false;
    for (uint32_t c : raw) {  // re.sub(r'\s+', ' ', text)
      const bool sp = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
      if (sp) {
        if (!in_space) cps.push_back(' ');
        in_space = true;
      } else {
        cps.push_back(c);
        in_space = false;
      }
    }
  }
  auto is_upper = [](uint32_t c) { return c >= 'A' && c <= 'Z'; };
  auto is_punct = [](uint32_t c) {
    return c == '.' || c == ',' || c == '?' || c == '!' || c == ':' || c == ';';
  };
  std::vector<char> choices;  // (?<![A-Z])([A-Z])(?=[\.\,\?\!\:\;]|$)
  for (size_t i = 0; i < cps.size(); ++i) {
    if (!is_upper(cps[i])) continue;
    if (i > 0 && is_upper(cps[i - 1])) continue;
    if (i + 1 == cps.size() || is_punct(cps[i + 1])) choices.push_back(static_cast<char>(cps[i]));
  }
  if (choices.empty()) return std::nullopt;
  if (choices.size() == 1) return choices[0];
  static const char* kKeywords[] = {"答案", "选择", "正确", "是",   "对",    "ANSWER",
                                    "CORRECT", "CHOOSE", "SELECT", "RIGHT", "认为", "应该",
                                    "觉得", "THINK", "BELIEVE", "SHOULD"};
  std::vector<std::pair<char, int>> scores;  // insertion order = first appearance
  for (char ch : choices)
    if (std::none_of(scores.begin(), scores.end(), [&](auto& s) { return s.first == ch; }))
      scores.push_back({ch, 0});
  const size_t n = cps.size();
  for (char ch : choices) {  // ref: iterates the list, so a repeated letter scores again
    const size_t pos = std::find(cps.begin(), cps.end(), static_cast<uint32_t>(ch)) - cps.begin();
    const size_t lo = pos >= 20 ? pos - 20 : 0, hi = std::min(n, pos + 20);
    const std::vector<uint32_t> ctx(cps.begin() + lo, cps.begin() + hi);
    int pts = 0;
    for (const char* kw : kKeywords) {
      const auto k = metrics::utf8_codepoints(kw);
      if (std::search(ctx.begin(), ctx.end(), k.begin(), k.end()) != ctx.end()) ++pts;
    }
    if (static_cast<double>(pos) > static_cast<double>(n) * 0.7) pts += 2;
    if (pos + 1 < n) {
      const uint32_t nx = cps[pos + 1];
      if (nx == 0x3002 || nx == '.' || nx == '!' || nx == 0xFF01 || nx == ',' || nx == 0xFF0C) ++pts;
    }
    for (auto& s : scores)
      if (s.first == ch) s.second += pts;
  }
  auto best = scores.begin();
  for (auto it = scores.begin(); it != scores.end(); ++it)
    if (it->second > best->second) best = it;
  return best->first;
}

std::optional<std::string> parse_yes_no(std::string_view text) {
  const std::string s = to_lower(text);
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t i = 0; i < s.size(); ++i) {
    for (const char* w : {"yes", "no"}) {
      const size_t len = std::char_traits<char>::length(w);
      if (s.compare(i, len, w) != 0) continue;
      // Whole words only: VLM-R1's bare re.search('(yes|no)') reads "not"/"know" as "no".
      if (i > 0 && is_word(s[i - 1])) continue;
      if (i + len < s.size() && is_word(s[i + len])) continue;
      return std::string(w);
    }
  }
  return std::nullopt;
}

std::string clean_text(std::string_view text) {
  // The LAST complete <answer>...</answer> (ref: VLM-R1 clean_text uses findall()[-1]).
  std::string_view body = text;
  size_t search = 0;
  while (true) {
    const size_t b = text.find("<answer>", search);
    if (b == std::string_view::npos) break;
    const size_t e = text.find("</answer>", b + 8);
    if (e == std::string_view::npos) break;
    body = text.substr(b + 8, e - b - 8);
    search = e + 9;
  }
  std::string cur(body);
  for (char nl : {'\n', '\r'}) {  // ref: two re.subs, the second sees the first's output
    std::string folded;
    for (size_t i = 0; i < cur.size(); ++i) {
      if (cur[i] != nl) folded += cur[i];
      else if (i == 0 || !is_space(cur[i - 1])) folded += ' ';  // else: dropped
    }
    cur.swap(folded);
  }
  std::string out = trim(cur);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return to_lower(out);
}

}  // namespace refract::rewards
