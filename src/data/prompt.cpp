#include "data/prompt.h"

#include "common/check.h"

namespace refract::data {

namespace {
constexpr const char* kPlaceholder = "<image>";
constexpr size_t kPlaceholderLen = 7;
constexpr const char* kVideoPlaceholder = "<video>";  // same length as <image>

int64_t count_of(const std::string& text, const char* what) {
  int64_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + kPlaceholderLen)) ++n;
  return n;
}

// The next <image> or <video> at or after `pos` (npos when none); `video` says which.
size_t next_placeholder(const std::string& text, size_t pos, bool* video) {
  const size_t i = text.find(kPlaceholder, pos), v = text.find(kVideoPlaceholder, pos);
  *video = v < i;
  return std::min(i, v);
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool is_box(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 4) return false;
  for (const auto& v : j)
    if (!v.is_number()) return false;
  return true;
}
}  // namespace

std::string question_template_text(const std::string& name) {
  if (name == "rec") return kRecTemplate;
  if (name == "default") return kDefaultTemplate;
  if (name == "none" || name.empty()) return "{Question}";
  // A recipe's own prompt, word for word (Visual-RFT, Perception-R1: configs/*.yaml).
  if (name.find("{Question}") != std::string::npos) return name;
  REFRACT_FAIL() << "question_template: '" << name
                 << "' is not one of rec, default, none, nor a template text containing {Question}";
}

int64_t count_image_placeholders(const std::string& text) { return count_of(text, kPlaceholder); }
int64_t count_video_placeholders(const std::string& text) { return count_of(text, kVideoPlaceholder); }

std::string build_content(const std::string& text, int64_t num_images, int64_t first_image,
                          const std::string& tmpl, std::vector<text::ContentItem>* out, int64_t num_videos,
                          int64_t first_video) {
  const int64_t placeholders = count_image_placeholders(text);
  if (placeholders > 0 && placeholders != num_images)
    return std::to_string(placeholders) + " <image> placeholder(s) but " +
           std::to_string(num_images) + " image(s)";
  const int64_t video_placeholders = count_video_placeholders(text);
  if (video_placeholders > 0 && video_placeholders != num_videos)
    return std::to_string(video_placeholders) + " <video> placeholder(s) but " + std::to_string(num_videos) +
           " video(s)";
  const size_t q = tmpl.find("{Question}");
  std::string prefix = q == std::string::npos ? "" : tmpl.substr(0, q);
  std::string suffix = q == std::string::npos ? tmpl : tmpl.substr(q + 10);
  // A template naming {Question} more than once (Visual-RFT's detection prompt names the
  // category twice): the later ones take the question's text (without its <image>s).
  if (suffix.find("{Question}") != std::string::npos) {
    std::string plain = text;
    bool video = false;
    for (size_t p = next_placeholder(plain, 0, &video); p != std::string::npos; p = next_placeholder(plain, p, &video))
      plain.erase(p, kPlaceholderLen);
    plain = trim(plain);
    for (size_t p = suffix.find("{Question}"); p != std::string::npos; p = suffix.find("{Question}", p + plain.size()))
      suffix.replace(p, 10, plain);
  }

  std::vector<text::ContentItem> items;
  // Media without placeholders lead (images, then videos); the others stand where they stood.
  if (placeholders == 0)
    for (int64_t i = 0; i < num_images; ++i) items.push_back(text::ContentItem::make_image(first_image + i));
  if (video_placeholders == 0)
    for (int64_t i = 0; i < num_videos; ++i) items.push_back(text::ContentItem::make_video(first_video + i));
  int64_t image = first_image, vid = first_video;
  size_t pos = 0;
  while (true) {
    bool video = false;
    const size_t p = next_placeholder(text, pos, &video);
    const std::string piece = text.substr(pos, p == std::string::npos ? std::string::npos : p - pos);
    if (!piece.empty()) items.push_back(text::ContentItem::make_text(piece));
    if (p == std::string::npos) break;
    items.push_back(video ? text::ContentItem::make_video(vid++) : text::ContentItem::make_image(image++));
    pos = p + kPlaceholderLen;
  }
  // The template wraps the question text: prefix on the first text piece, suffix on the last.
  int64_t first_text = -1, last_text = -1;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].kind != text::ContentItem::Kind::kText) continue;
    if (first_text < 0) first_text = static_cast<int64_t>(i);
    last_text = static_cast<int64_t>(i);
  }
  if (first_text < 0) {
    if (!prefix.empty() || !suffix.empty()) items.push_back(text::ContentItem::make_text(prefix + suffix));
  } else {
    items[static_cast<size_t>(first_text)].text = prefix + items[static_cast<size_t>(first_text)].text;
    items[static_cast<size_t>(last_text)].text += suffix;
  }
  // Drop a text item that became empty (e.g. an empty question with template "none").
  for (const auto& it : items)
    if (it.kind != text::ContentItem::Kind::kText || !it.text.empty()) out->push_back(it);
  return "";
}

std::string strip_answer_tags(const std::string& s) {
  std::string r = s;
  for (const char* tag : {"<answer>", "</answer>"}) {
    const std::string t = tag;
    for (size_t p = r.find(t); p != std::string::npos; p = r.find(t, p)) r.erase(p, t.size());
  }
  return trim(r);
}

ParsedSolution parse_solution(const std::string& text, const std::string& task) {
  ParsedSolution out;
  out.value = text;
  if (task == "ocr" || task == "cls") return out;
  std::string body = trim(text);
  // ```json ... ``` fences (VLM-R1 detection solutions).
  if (body.rfind("```", 0) == 0) {
    const size_t nl = body.find('\n');
    const size_t end = body.rfind("```");
    if (nl != std::string::npos && end != std::string::npos && end > nl) body = trim(body.substr(nl + 1, end - nl - 1));
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return out;
  if (j.is_object() && j.contains("bbox_2d") && is_box(j["bbox_2d"])) {
    if (j.contains("label") && j["label"].is_string()) out.label = j["label"];
    j = j["bbox_2d"];
  }
  if (is_box(j)) {
    out.inferred_task = "rec";
  } else if (j.is_array() && !j.empty()) {
    bool all = true;
    for (const auto& e : j) all = all && e.is_object() && e.contains("bbox_2d");
    if (all) out.inferred_task = "det";
  }
  out.value = std::move(j);
  return out;
}

}  // namespace refract::data
