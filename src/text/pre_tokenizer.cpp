#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pre_tokenizer.h"

#include <pcre2.h>

#include "common/check.h"

namespace refract::text {

namespace {
// Oniguruma's Unicode \s: the White_Space property.
constexpr const char* kWhiteSpaceItems =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";
// ref: HF tokenizers 0.22.2 runs the split regex with Oniguruma built on Unicode 16 tables;
// PCRE2 10.42 has Unicode 14. Letters and numbers added since are appended to \p{L} / \p{N}
// (a union: harmless when PCRE2 already knows them).
#include "text/onig_class_extra.inc"

// `\p{X}` at p[i] (i at the backslash) for X in {L, N}: the class body to use, or nullptr.
const char* extra_for_property(std::string_view p, size_t i, size_t& len) {
  if (p.compare(i, 5, "\\p{L}") == 0) {
    len = 5;
    return kOnigExtraL;
  }
  if (p.compare(i, 5, "\\p{N}") == 0) {
    len = 5;
    return kOnigExtraN;
  }
  return nullptr;
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    size_t prop_len = 0;
    if (const char* extra = extra_for_property(p, i, prop_len)) {
      const std::string item = std::string(p.substr(i, prop_len)) + extra;
      out += class_depth > 0 ? item : "[" + item + "]";
      i += prop_len - 1;
      continue;
    }
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      ++i;
      if (n == 's') {
        if (class_depth > 0) {
          out += kWhiteSpaceItems;
        } else {
          out += "[";
          out += kWhiteSpaceItems;
          out += "]";
        }
      } else if (n == 'S') {
        REFRACT_CHECK(class_depth == 0) << "pre-tokenizer regex: \\S inside a class is not supported";
        out += "[^";
        out += kWhiteSpaceItems;
        out += "]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

namespace {
// Per-thread match data and JIT stack (pcre2 objects are not shareable across threads).
struct ThreadMatch {
  pcre2_match_data* data = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadMatch() {
    data = pcre2_match_data_create(4, nullptr);
    // Long whitespace runs backtrack through `\s+(?!\S)`: give the JIT room.
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};
}  // namespace

RegexSplitter::RegexSplitter(const std::string& onig_pattern) : impl_(std::make_unique<Impl>()) {
  const std::string pattern = onig_to_pcre2(onig_pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    REFRACT_FAIL() << "pre-tokenizer regex does not compile at offset " << err_off << ": "
                   << reinterpret_cast<const char*>(msg) << " (pattern " << onig_pattern << ")";
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  thread_local ThreadMatch tm;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;  // where the next gap starts
  size_t offset = 0;
  while (offset < text.size()) {
    const int rc = impl_->jit
                       ? pcre2_jit_match(impl_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                         tm.data, tm.context)
                       : pcre2_match(impl_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                     tm.data, tm.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    REFRACT_CHECK(rc >= 0) << "pre-tokenizer regex match failed (pcre2 error " << rc << ")";
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tm.data);
    const size_t start = ov[0], end = ov[1];
    if (end == start) {
      // An empty match produces no piece; step over one character.
      offset = start + 1;
      while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    if (start > pos) pieces.push_back(text.substr(pos, start - pos));
    pieces.push_back(text.substr(start, end - start));
    pos = offset = end;
  }
  if (pos < text.size()) pieces.push_back(text.substr(pos));
}

}  // namespace refract::text
