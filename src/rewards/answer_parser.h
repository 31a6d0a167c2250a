// Tolerant parsing of model outputs: tags, JSON, boxes, numbers, options, yes/no.
// "Parse tolerantly, score strictly": every function here accepts any bytes and returns
// nullopt / empty on failure, never throws.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/box.h"

namespace refract::rewards {

using metrics::Box;

// Text inside the first <think>...</think>; nullopt if there is no <think>. A missing close
// tag reads to the end.
std::optional<std::string> extract_think(std::string_view text);

// Text inside the first <answer>...</answer> (DOTALL), not trimmed. A missing close tag reads
// to the end (ref: Visual-RFT extract_bbox). nullopt if there is no <answer>.
std::optional<std::string> extract_answer(std::string_view text);

// extract_answer(text) if the tag is present, else the whole text (PR1 answers carry no
// tags). Trimmed of surrounding whitespace.
std::string answer_or_text(std::string_view text);

// The body of the first ```json (or ```) fence, to the closing fence or the end; the input
// unchanged when there is no fence.
std::string strip_code_fence(std::string_view text);

// Lenient JSON: the first '[' or '{' value in `text` (after fence stripping), accepting single
// quotes, bare keys, trailing commas, Python True/False/None, and a truncated list closed after
// its last complete element (ref: Visual-RFT closes at the last "},"). nullopt if no value.
std::optional<nlohmann::json> parse_json_lenient(std::string_view text);

// All [a, b, c, d] number quadruples in order (ints or floats, optional sign); when there is
// none, Qwen2-VL's "(x1,y1),(x2,y2)" corner pairs (its box text without the special tokens).
std::vector<Box> find_boxes(std::string_view text);

// The first [int, int, int, int] (non-negative integers, `\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]`)
// ref: VLM-R1 grpo_rec.py iou_reward bbox_pattern.
std::optional<Box> first_int_box(std::string_view text);

// One detected object as the model wrote it.
struct DetItem {
  Box box;
  std::string label;                  // "" if the model gave none
  std::optional<double> confidence;   // "confidence" / "Confidence" / "score"
};

// Result of reading a list of objects: the items that parsed, and how many entries were
// seen in total (for PR1's format-valid fraction).
struct DetList {
  std::vector<DetItem> items;
  size_t entries = 0;   // list entries seen (valid or not)
  bool parsed = false;  // a JSON value or a box token was found at all
};

// Objects from an answer: a JSON list of {"bbox_2d"|"bbox"|"Position": [4 numbers],
// "label"|"Label"|"category": .., "confidence"|"Confidence"|"score": c} or of bare
// [x1,y1,x2,y2] lists, a single such object, or Qwen2-VL box tokens
// `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`.
DetList parse_det_items(std::string_view answer);

// One box from a JSON value: [4 numbers] or an object with a box key.
std::optional<DetItem> det_item_from_json(const nlohmann::json& v);

// Qwen2-VL box tokens only (values as written, 0-1000 units).
std::vector<DetItem> parse_qwen2_box_tokens(std::string_view text);

// The first number in the text ("3", "-2.5", "1e3", "1,024" -> 1024).
std::optional<double> parse_number(std::string_view text);

// Option letter: VLM-R1 extract_choice heuristic (an uppercase letter not preceded by an
// uppercase letter and followed by punctuation or the end; several -> keyword/position score).
std::optional<char> parse_option_letter(std::string_view text);

// First "yes" or "no" substring, lowercased (ref: VLM-R1 yes_no_reward re.search(r'(yes|no)')).
std::optional<std::string> parse_yes_no(std::string_view text);

// VLM-R1 clean_text: the last <answer> body if any, newlines folded to spaces, trimmed,
// trailing '.' removed, lowercased.
std::string clean_text(std::string_view text);

// ASCII lowercase / whitespace trim helpers.
std::string to_lower(std::string_view s);
std::string trim(std::string_view s);

}  // namespace refract::rewards
