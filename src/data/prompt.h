// Prompts: question templates and user turns built from text with <image> placeholders.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/chat_template.h"

namespace refract::data {

// ref: VLM-R1 src/open-r1-multimodal/src/open_r1/grpo_rec.py QUESTION_TEMPLATE (word for word).
inline constexpr const char* kRecTemplate =
    "{Question} First output the thinking process in <think> </think> tags and then output the "
    "final answer in <answer> </answer> tags. Output the final answer in JSON format.";
// ref: VLM-R1 grpo_jsonl.py question_prompt (the R1 think/answer format without JSON).
inline constexpr const char* kDefaultTemplate =
    "{Question} First output the thinking process in <think> </think> tags and then output the "
    "final answer in <answer> </answer> tags.";

// "rec" | "default" | "none" -> the template text ("{Question}" for none); a text holding
// {Question} is itself the template (a recipe's prompt, word for word). Later occurrences of
// {Question} in a template take the question's text too.
std::string question_template_text(const std::string& name);

// Builds user-turn content from `text` holding `<image>` placeholders, wrapped in `tmpl`:
// the template's text before {Question} joins the first text piece, the rest the last one.
// Images stand where their placeholder stood (VLM-R1 moves all images first; refract keeps
// the positions). With no placeholder, all `num_images` images come first (VLM-R1's layout).
// `first_image` offsets the image indices (for multi-turn conversations).
// Returns "" on success, else why the sample is unusable (placeholder count mismatch).
// `<video>` placeholders place videos the same way (ms-swift / LLaMA-Factory); without one,
// all `num_videos` videos follow the leading images.
std::string build_content(const std::string& text, int64_t num_images, int64_t first_image,
                          const std::string& tmpl, std::vector<text::ContentItem>* out,
                          int64_t num_videos = 0, int64_t first_video = 0);

// Counts `<image>` occurrences.
int64_t count_image_placeholders(const std::string& text);
// Counts `<video>` occurrences.
int64_t count_video_placeholders(const std::string& text);

// Strips <answer> tags (VLM-R1: replace('<answer>','').replace('</answer>','').strip()).
std::string strip_answer_tags(const std::string& s);

// Ground truth from an answer text: JSON when it parses (```json fences removed), a
// {"bbox_2d": [...]} object reduced to its box, else the text itself. `task` "ocr" / "cls"
// keep text as text (so "0042" or "123" stay strings).
struct ParsedSolution {
  nlohmann::json value;
  std::string inferred_task;  // "rec" for a box, "det" for a bbox_2d list, else ""
  std::string label;          // a single bbox_2d object's label
};
ParsedSolution parse_solution(const std::string& text, const std::string& task);

}  // namespace refract::data
