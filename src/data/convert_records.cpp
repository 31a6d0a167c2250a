// Record -> Sample for VLM-R1 JSONL conversations, VLM-R1 REC JSON and ms-swift JSONL.
#include <filesystem>
#include <set>

#include "data/formats_internal.h"
#include "data/prompt.h"
#include "vision/video.h"

namespace refract::data::detail {

namespace {

std::string value_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// A string or a list of strings -> paths; "" on success else the reason.
std::string read_image_list(const nlohmann::json& v, const std::string& field,
                            std::vector<std::string>* out) {
  auto one = [&](const nlohmann::json& e) -> bool {
    if (e.is_string()) return out->push_back(e.get<std::string>()), true;
    // ms-swift also accepts {"path": ...}.
    if (e.is_object() && e.contains("path") && e["path"].is_string())
      return out->push_back(e["path"].get<std::string>()), true;
    return false;
  };
  if (v.is_null()) return "";
  if (v.is_array()) {
    for (const auto& e : v)
      if (!one(e)) return "field '" + field + "' must be a string or a list of strings";
    return "";
  }
  return one(v) ? "" : "field '" + field + "' must be a string or a list of strings";
}

std::string add_images(const std::vector<std::string>& paths, const Context& ctx, Sample& s) {
  for (const auto& p : paths) {
    if (p.empty()) return "empty image path";
    if (p.rfind("http://", 0) == 0 || p.rfind("https://", 0) == 0)
      return "remote image URLs are not supported (download first): " + p;
    s.images.push_back({resolve_image(ctx.image_folder, p), 0, 0});
  }
  return "";
}

// One video of a record: "clip.mp4", ["f0.jpg", "f1.jpg", ...] (its frames), or an object
// {"video": either of those (or "path"), "fps": 1, "max_frames": 16, ...} with qwen-vl-utils'
// keys. "" on success else the reason.
std::string add_video(const nlohmann::json& v, const Context& ctx, Sample& s) {
  VideoRef ref;
  const nlohmann::json* src = &v;
  if (v.is_object()) {
    for (const char* k : {"video", "path"})
      if (v.contains(k)) src = &v[k];
    if (src == &v) return "a video object needs a 'video' (or 'path') field";
    nlohmann::json opts = v;
    opts.erase("path");
    try {
      vision::video_options_from_json(opts, "video");
    } catch (const std::exception& e) {
      std::string m = e.what();
      const size_t p = m.find("] ");
      return p == std::string::npos ? m : m.substr(p + 2);
    }
    opts.erase("video");
    opts.erase("type");
    ref.options = opts;
  }
  auto check = [](const std::string& p) -> std::string {
    if (p.empty()) return "empty video path";
    if (p.rfind("http://", 0) == 0 || p.rfind("https://", 0) == 0)
      return "remote video URLs are not supported (download first): " + p;
    return "";
  };
  if (src->is_string()) {
    if (auto r = check(src->get<std::string>()); !r.empty()) return r;
    ref.path = resolve_image(ctx.image_folder, src->get<std::string>());
  } else if (src->is_array() && !src->empty()) {
    for (const auto& f : *src) {
      if (!f.is_string()) return "a video's frames must be a list of image paths";
      if (auto r = check(f.get<std::string>()); !r.empty()) return r;
      ref.frames.push_back(resolve_image(ctx.image_folder, f.get<std::string>()));
    }
  } else {
    return "a video must be a path, a list of frame paths or an object with 'video'";
  }
  s.videos.push_back(std::move(ref));
  return "";
}

void set_solution(const std::string& text, Sample& s) {
  ParsedSolution p = parse_solution(strip_answer_tags(text), s.task);
  s.solution = std::move(p.value);
  if (s.task.empty()) s.task = p.inferred_task;
  if (!p.label.empty() && !s.extra.contains("label")) s.extra["label"] = p.label;
}

void copy_extra(const nlohmann::json& j, const std::set<std::string>& used, Sample& s) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!used.count(it.key())) s.extra[it.key()] = it.value();
}

std::string read_task(const nlohmann::json& j, Sample& s) {
  if (!j.contains("task")) return "";
  if (!j["task"].is_string()) return "field 'task' must be a string";
  s.task = j["task"].get<std::string>();
  return "";
}

std::string read_method(const nlohmann::json& j, const Context& ctx, Sample& s) {
  s.reward_method = ctx.reward_method;
  if (!j.contains("accu_reward_method")) return "";
  if (!j["accu_reward_method"].is_string()) return "field 'accu_reward_method' must be a string";
  s.reward_method = j["accu_reward_method"].get<std::string>();
  return "";
}

}  // namespace

std::string resolve_image(const std::string& folder, const std::string& path) {
  if (folder.empty() || path.rfind("data:", 0) == 0 || (!path.empty() && path[0] == '/')) return path;
  return (std::filesystem::path(folder) / path).string();
}

std::string id_string(const nlohmann::json& j) {
  if (!j.contains("id")) return "";
  return value_text(j["id"]);
}

// ref: VLM-R1 src/open-r1-multimodal/src/open_r1/grpo_jsonl.py (image joined to the file's
// image folder; question = human value; solution = gpt value without <answer> tags).
std::string convert_vlmr1(const nlohmann::json& j, const Context& ctx, Sample& s) {
  if (!j.is_object()) return "record is not a JSON object";
  if (!j.contains("conversations")) return "missing field 'conversations'";
  const auto& conv = j["conversations"];
  if (!conv.is_array() || conv.empty()) return "field 'conversations' must be a non-empty list";
  if (!conv[0].is_object() || !conv[0].contains("value") || !conv[0]["value"].is_string())
    return "conversations[0] has no string 'value'";
  std::vector<std::string> paths;
  if (j.contains("image")) {
    if (auto r = read_image_list(j["image"], "image", &paths); !r.empty()) return r;
  }
  if (auto r = add_images(paths, ctx, s); !r.empty()) return r;
  if (auto r = read_task(j, s); !r.empty()) return r;
  if (auto r = read_method(j, ctx, s); !r.empty()) return r;
  text::Message user{"user", {}};
  if (auto r = build_content(conv[0]["value"].get<std::string>(), static_cast<int64_t>(s.images.size()),
                             0, ctx.question_template, &user.content);
      !r.empty())
    return r;
  s.prompt = {user};
  if (conv.size() >= 2) {
    if (!conv[1].is_object() || !conv[1].contains("value")) return "conversations[1] has no 'value'";
    s.response = value_text(conv[1]["value"]);
  }
  copy_extra(j, {"id", "image", "conversations", "accu_reward_method", "task"}, s);
  set_solution(s.response, s);
  s.id = id_string(j);
  return "";
}

// ref: VLM-R1 grpo_rec.py (image_root joined to `image`, prompt = image + QUESTION_TEMPLATE
// formatted with `problem`, solution = the box in original-image pixels).
std::string convert_rec_json(const nlohmann::json& j, const Context& ctx, Sample& s) {
  if (!j.is_object()) return "record is not a JSON object";
  for (const char* f : {"image", "problem", "solution"})
    if (!j.contains(f)) return std::string("missing field '") + f + "'";
  if (!j["problem"].is_string()) return "field 'problem' must be a string";
  std::vector<std::string> paths;
  if (auto r = read_image_list(j["image"], "image", &paths); !r.empty()) return r;
  if (auto r = add_images(paths, ctx, s); !r.empty()) return r;
  const auto& sol = j["solution"];
  bool box = sol.is_array() && sol.size() == 4;
  for (size_t i = 0; box && i < 4; ++i) box = sol[i].is_number();
  if (!box) return "field 'solution' is not [x1, y1, x2, y2]";
  s.task = "rec";
  if (auto r = read_method(j, ctx, s); !r.empty()) return r;
  text::Message user{"user", {}};
  if (auto r = build_content(j["problem"].get<std::string>(), static_cast<int64_t>(s.images.size()), 0,
                             ctx.question_template, &user.content);
      !r.empty())
    return r;
  s.prompt = {user};
  s.solution = sol;
  copy_extra(j, {"image", "problem", "solution", "accu_reward_method"}, s);
  s.id = id_string(j);
  return "";
}

// ms-swift: {"messages": [...], "images": [...]} or query/response aliases.
std::string convert_swift(const nlohmann::json& j, const Context& ctx, Sample& s) {
  if (!j.is_object()) return "record is not a JSON object";
  std::set<std::string> used = {"messages", "images", "image_path", "image", "videos", "video", "system", "task",
                                "accu_reward_method", "id"};
  struct Turn {
    std::string role, text;
  };
  std::vector<Turn> turns;
  bool inline_videos = false;
  if (j.contains("messages")) {
    const auto& msgs = j["messages"];
    if (!msgs.is_array() || msgs.empty()) return "field 'messages' must be a non-empty list";
    for (size_t i = 0; i < msgs.size(); ++i) {
      const auto& m = msgs[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
        return "messages[" + std::to_string(i) + "] needs 'role' and 'content'";
      Turn t{m["role"].get<std::string>(), ""};
      if (t.role != "system" && t.role != "user" && t.role != "assistant")
        return "messages[" + std::to_string(i) + "]: unknown role '" + t.role + "'";
      const auto& c = m["content"];
      if (c.is_string()) {
        t.text = c.get<std::string>();
      } else if (c.is_array()) {
        // OpenAI-style parts: text parts joined, image parts become placeholders; a video part
        // ({"type": "video", "video": ..., "fps": ...}, qwen-vl-utils) carries its video.
        for (const auto& part : c) {
          const std::string type = part.is_object() ? part.value("type", "") : "";
          if (type == "text") {
            t.text += part.value("text", "");
          } else if (type == "image" || type == "image_url") {
            t.text += "<image>";
          } else if (type == "video") {
            if (auto r = add_video(part, ctx, s); !r.empty()) return "messages[" + std::to_string(i) + "]: " + r;
            t.text += "<video>";
            inline_videos = true;
          } else {
            return "messages[" + std::to_string(i) + "]: unsupported content part";
          }
        }
      } else {
        return "messages[" + std::to_string(i) + "]: 'content' must be a string or a list";
      }
      turns.push_back(std::move(t));
    }
  } else {
    if (j.contains("system") && j["system"].is_string()) turns.push_back({"system", j["system"]});
    bool found = false;
    for (const char* k : {"query", "prompt", "question", "problem"}) {
      if (!j.contains(k)) continue;
      if (!j[k].is_string()) return std::string("field '") + k + "' must be a string";
      turns.push_back({"user", j[k].get<std::string>()});
      used.insert(k);
      found = true;
      break;
    }
    if (!found) return "missing field 'messages' (or 'query' / 'prompt' / 'question' / 'problem')";
    for (const char* k : {"response", "answer", "output"}) {
      if (!j.contains(k)) continue;
      turns.push_back({"assistant", value_text(j[k])});
      used.insert(k);
      break;
    }
  }
  std::vector<std::string> paths;
  for (const char* k : {"images", "image_path", "image"}) {
    if (!j.contains(k)) continue;
    if (auto r = read_image_list(j[k], k, &paths); !r.empty()) return r;
    break;
  }
  if (auto r = add_images(paths, ctx, s); !r.empty()) return r;
  // ref: ms-swift / LLaMA-Factory "videos": [...] with <video> placeholders.
  for (const char* k : {"videos", "video"}) {
    if (!j.contains(k)) continue;
    if (inline_videos) return std::string("videos given both in content parts and in '") + k + "'";
    const auto& v = j[k];
    // A list of strings is a list of videos; one video given as its frames is a list inside it.
    if (v.is_array()) {
      for (const auto& e : v)
        if (auto r = add_video(e, ctx, s); !r.empty()) return "field '" + std::string(k) + "': " + r;
    } else if (!v.is_null()) {
      if (auto r = add_video(v, ctx, s); !r.empty()) return "field '" + std::string(k) + "': " + r;
    }
    break;
  }
  if (auto r = read_task(j, s); !r.empty()) return r;
  if (auto r = read_method(j, ctx, s); !r.empty()) return r;

  // The last assistant turn is the target; everything before it is the prompt.
  size_t end = turns.size();
  if (!turns.empty() && turns.back().role == "assistant") {
    s.response = turns.back().text;
    end = turns.size() - 1;
  }
  int64_t placeholders = 0, video_placeholders = 0, last_user = -1, first_user = -1;
  for (size_t i = 0; i < end; ++i) {
    if (turns[i].role != "user") continue;
    placeholders += count_image_placeholders(turns[i].text);
    video_placeholders += count_video_placeholders(turns[i].text);
    if (first_user < 0) first_user = static_cast<int64_t>(i);
    last_user = static_cast<int64_t>(i);
  }
  if (last_user < 0) return "no user turn before the answer";
  const int64_t n_images = static_cast<int64_t>(s.images.size());
  if (placeholders > 0 && placeholders != n_images)
    return std::to_string(placeholders) + " <image> placeholder(s) but " + std::to_string(n_images) +
           " image(s)";
  const int64_t n_videos = static_cast<int64_t>(s.videos.size());
  if (video_placeholders > 0 && video_placeholders != n_videos)
    return std::to_string(video_placeholders) + " <video> placeholder(s) but " + std::to_string(n_videos) + " video(s)";
  int64_t next_image = 0, next_video = 0;
  for (size_t i = 0; i < end; ++i) {
    text::Message m{turns[i].role, {}};
    const bool is_user = turns[i].role == "user";
    // Without placeholders all images open the first user turn (ms-swift prepends <image>).
    int64_t k = 0;
    if (is_user) k = placeholders == 0 ? (static_cast<int64_t>(i) == first_user ? n_images : 0)
                                       : count_image_placeholders(turns[i].text);
    int64_t kv = 0;
    if (is_user) kv = video_placeholders == 0 ? (static_cast<int64_t>(i) == first_user ? n_videos : 0)
                                              : count_video_placeholders(turns[i].text);
    const std::string tmpl = static_cast<int64_t>(i) == last_user ? ctx.question_template : "{Question}";
    std::string text = turns[i].text;
    if (!is_user) {
      m.content.push_back(text::ContentItem::make_text(text));
    } else if (auto r = build_content(text, k, next_image, tmpl, &m.content, kv, next_video); !r.empty()) {
      return r;
    }
    next_image += k;
    next_video += kv;
    s.prompt.push_back(std::move(m));
  }
  copy_extra(j, used, s);
  // Ground truth travels in `solution` (ms-swift GRPO); without it, the answer itself.
  set_solution(j.contains("solution") ? value_text(j["solution"]) : s.response, s);
  s.id = id_string(j);
  return "";
}

}  // namespace refract::data::detail
