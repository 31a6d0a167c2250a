// String distances on Unicode code points (not bytes): OCR rewards and metrics, fuzzy
// answer matching.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace refract::metrics {

// UTF-8 -> code points. An invalid byte becomes one code point 0xDC00 + byte (like Python's
// surrogateescape), so any input is accepted and distances stay defined.
std::vector<uint32_t> utf8_codepoints(std::string_view s);

// Levenshtein distance (insert, delete, substitute all cost 1).
int64_t levenshtein(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
int64_t levenshtein(std::string_view a, std::string_view b);

// 1 - levenshtein / max(len): the PR1 OCR reward. Both empty -> 1.
double edit_similarity(std::string_view pred, std::string_view ref);

// Character error rate: levenshtein / len(ref). Empty ref: 0 if pred empty, else 1.
double char_error_rate(std::string_view pred, std::string_view ref);

// python-Levenshtein's ratio(): 1 - indel_distance / (len_a + len_b), where indel distance
// counts insertions and deletions only (a substitution costs 2). Both empty -> 1.
// ref: rapidfuzz Levenshtein.ratio (VLM-R1 default_accuracy_reward's fuzzy match)
double indel_ratio(std::string_view a, std::string_view b);

// F1 between the SETS of whitespace-separated tokens (PR1 OCR evaluation). Both empty -> 1.
double token_set_f1(std::string_view pred, std::string_view ref);

}  // namespace refract::metrics
