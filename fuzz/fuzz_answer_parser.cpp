// Fuzzes the answer parser: any bytes a model can emit must parse without crashing, hanging
// or reading out of bounds (ASan/UBSan), and what parses must be self-consistent.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "metrics/text_distance.h"
#include "rewards/answer_parser.h"

using namespace refract::rewards;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)extract_think(text);
  auto answer = extract_answer(text);
  if (answer && answer->size() > text.size()) std::abort();
  const std::string a = answer_or_text(text);
  if (auto j = parse_json_lenient(a)) {
    // Whatever we accept must serialise (invalid UTF-8 inside strings is replaced).
    (void)j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  for (const auto& b : find_boxes(a))
    if (std::isnan(b.x1) || std::isnan(b.y2)) std::abort();
  (void)first_int_box(a);
  DetList d = parse_det_items(a);
  if (d.items.size() > d.entries) std::abort();
  (void)parse_number(a);
  if (auto c = parse_option_letter(a))
    if (*c < 'A' || *c > 'Z') std::abort();
  (void)parse_yes_no(a);
  (void)clean_text(text);
  if (size < 512) {  // quadratic: keep inputs short
    const double s = refract::metrics::edit_similarity(a, text);
    if (!(s >= 0.0 && s <= 1.0)) std::abort();
  }
  return 0;
}
