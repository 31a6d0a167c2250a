#include "text/nfc.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/check.h"
#include "text/utf8.h"

namespace refract::text {
namespace {

// Code points assigned in Unicode 9.0, as an inversion list (see gen_unicode9_table.pl).
constexpr uint32_t kPresentIn9[] = {
#include "text/unicode9_present.inc"
};

bool present_in_unicode9(char32_t cp) {
  const auto* end = std::end(kPresentIn9);
  const auto* it = std::upper_bound(std::begin(kPresentIn9), end, static_cast<uint32_t>(cp));
  return ((it - std::begin(kPresentIn9)) & 1) == 1;  // inside [l[2k], l[2k+1])
}

enum : uint8_t {
  kInert = 0,     // NFC never touches it, whatever its neighbours
  kActive = 1,    // may decompose, reorder or compose (9.0 character)
  kBoundary = 2,  // post-9.0 character utf8proc would touch: keep verbatim, split around it
};

// One byte per code point: what NFC may do with it. Built once from utf8proc's tables.
const std::vector<uint8_t>& nfc_classes() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(0x110000, kInert);
    for (char32_t cp = 0x80; cp < 0x110000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
      const bool canonical_decomp = p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0;
      // comb_index marks a character that takes part in a canonical composition pair.
      const bool active = p->combining_class != 0 || canonical_decomp ||
                          p->comb_index != UINT16_MAX || p->comp_exclusion ||
                          (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3);
      if (!active) continue;
      t[cp] = present_in_unicode9(cp) ? kActive : kBoundary;
    }
    return t;
  }();
  return table;
}

void append_nfc(std::string& out, std::string_view seg) {
  utf8proc_uint8_t* buf = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(seg.data()), static_cast<utf8proc_ssize_t>(seg.size()),
      &buf, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  REFRACT_CHECK(n >= 0) << "NFC failed: " << utf8proc_errmsg(n);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  std::free(buf);
}

}  // namespace

std::string nfc_unicode9(std::string_view s) {
  const std::vector<uint8_t>& cls = nfc_classes();
  // Fast path: nothing that NFC could change.
  bool any = false;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    if (cls[utf8_next(s, i)] != kInert) {
      any = true;
      break;
    }
  }
  if (!any) return std::string(s);

  // ref: unicode-normalization-alignments 0.1.12 (Unicode 9.0 tables): an unknown character
  // has combining class 0 and no mappings, so it is a starter that blocks reordering and
  // never composes: normalising the stretches between such characters separately is exact.
  std::string out;
  out.reserve(s.size() + 16);
  size_t seg_start = 0;
  bool seg_active = false;
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    uint8_t c = kInert;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
    } else {
      c = cls[utf8_next(s, i)];
    }
    if (c == kActive) seg_active = true;
    if (c == kBoundary) {
      std::string_view seg = s.substr(seg_start, at - seg_start);
      if (seg_active) append_nfc(out, seg); else out.append(seg);
      out.append(s.substr(at, i - at));
      seg_start = i;
      seg_active = false;
    }
  }
  std::string_view seg = s.substr(seg_start);
  if (seg_active) append_nfc(out, seg); else out.append(seg);
  return out;
}

}  // namespace refract::text
