// Validation of chat completion requests. Every rule names the field it checks, the way
// OpenAI reports `param`, so a client sees exactly what to fix.
#include "serve/chat_request.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "serve/api_error.h"
#include "vision/video.h"

namespace refract::serve {
namespace {

constexpr int64_t kMaxTopLogprobs = 20;  // ref: OpenAI top_logprobs: "between 0 and 20"
using json = nlohmann::json;

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();  // null, boolean, string, array, object
}

double get_number(const json& v, const std::string& param) {
  if (!v.is_number()) throw bad_request(param + " must be a number, got " + type_name(v), param);
  return v.get<double>();
}

int64_t get_integer(const json& v, const std::string& param) {
  if (v.is_number_integer()) {
    // Unsigned values beyond int64 would wrap.
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      throw bad_request(param + " is too large", param);
    return v.get<int64_t>();
  }
  // 4.0 is an integer in JSON's eyes (JavaScript clients send it so).
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  throw bad_request(param + " must be an integer, got " + type_name(v), param);
}

std::string get_string(const json& v, const std::string& param) {
  if (!v.is_string()) throw bad_request(param + " must be a string, got " + type_name(v), param);
  return v.get<std::string>();
}

void check_range(double x, double lo, double hi, bool lo_open, const std::string& param) {
  const bool ok = (lo_open ? x > lo : x >= lo) && x <= hi;
  if (!ok) {
    std::ostringstream s;
    s << param << " must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << x;
    throw bad_request(s.str(), param);
  }
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// One answer for every local path that cannot be used (missing, outside, unreadable, not a
// file): a client must not learn whether a path exists or anything about it.
ApiError local_path_refused(const std::string& param, const std::string& kind = "image") {
  return bad_request(param + ": this local " + kind + " cannot be used: " + kind + " files must lie under the server's "
                     "allowed_local_media_path",
                     param);
}

bool lies_under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() + 1 && path.compare(0, dir.size(), dir) == 0 &&
         (dir == "/" || path[dir.size()] == '/');
}

// An image (video) reference: a base64 data URL, or (when a directory is allowed) a local file.
std::string check_media_url(const std::string& url, const RequestLimits& limits, const std::string& param,
                            const std::string& kind) {
  if (url.empty()) throw bad_request(param + " is empty", param);
  if (starts_with(url, "data:")) {
    // ref: transformers load_image accepts data:image/<fmt>;base64,<payload> only (videos:
    // vLLM's data:video/<fmt>;base64,<payload>).
    if (!starts_with(url, "data:" + kind + "/"))
      throw bad_request(param + ": a data URL must have an " + kind + "/* media type", param);
    const size_t comma = url.find(',');
    if (comma == std::string::npos || comma < 7 || url.compare(comma - 7, 7, ";base64") != 0)
      throw bad_request(param + ": a data URL must be base64-encoded (data:" + (kind == "image" ? "image/png" : "video/mp4") +
                            ";base64,...)",
                        param);
    return url;
  }
  if (is_remote_url(url))
    throw bad_request(param + ": remote " + kind + " URLs are not fetched; send a data: URL (base64)", param);
  // ref: vLLM --allowed-local-media-path: local files only when the server names a directory.
  if (limits.allowed_local_media_path.empty())
    throw bad_request(param + ": local " + kind + " files are disabled on this server (see allowed_local_media_path); "
                      "send a data: URL",
                      param);
  std::string path = url;
  if (starts_with(url, "file:")) {
    path = url.substr(5);
    if (starts_with(path, "//localhost/")) path = path.substr(11);
    else if (starts_with(path, "//")) path = path.substr(2);  // file:///abs -> /abs
    path = percent_decode(path);
    if (!starts_with(path, "/")) throw local_path_refused(param, kind);
  }
  if (path.find('\0') != std::string::npos) throw local_path_refused(param, kind);
  // A relative path is relative to the allowed directory.
  if (!starts_with(path, "/")) path = limits.allowed_local_media_path + "/" + path;
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) throw local_path_refused(param, kind);
  const std::string real(resolved);
  struct stat st {};
  if (!lies_under(real, limits.allowed_local_media_path) || ::stat(resolved, &st) != 0 || !S_ISREG(st.st_mode))
    throw local_path_refused(param, kind);
  return real;
}

// One content part: {"type": "text", "text"} or {"type": "image_url", "image_url": {"url"}}.
text::ContentItem parse_part(const json& part, const std::string& role, ChatRequest& req,
                             const RequestLimits& limits, const std::string& param) {
  if (!part.is_object()) throw bad_request(param + " must be an object, got " + type_name(part), param);
  if (!part.contains("type")) throw bad_request(param + ".type is required", param + ".type");
  const std::string type = get_string(part["type"], param + ".type");
  if (type == "text") {
    for (const auto& [k, v] : part.items())
      if (k != "type" && k != "text") throw bad_request(param + ": unrecognized field '" + k + "'", param + "." + k);
    if (!part.contains("text")) throw bad_request(param + ".text is required", param + ".text");
    return text::ContentItem::make_text(get_string(part["text"], param + ".text"));
  }
  if (type == "image_url") {
    for (const auto& [k, v] : part.items())
      if (k != "type" && k != "image_url")
        throw bad_request(param + ": unrecognized field '" + k + "'", param + "." + k);
    if (role != "user") throw bad_request(param + ": images are only allowed in user messages", param);
    if (!part.contains("image_url")) throw bad_request(param + ".image_url is required", param + ".image_url");
    const json& iu = part["image_url"];
    std::string url;
    const std::string url_param = param + ".image_url.url";
    if (iu.is_string()) {  // some clients send the URL directly
      url = iu.get<std::string>();
    } else if (iu.is_object()) {
      for (const auto& [k, v] : iu.items())
        if (k != "url" && k != "detail")
          throw bad_request(param + ".image_url: unrecognized field '" + k + "'", param + ".image_url." + k);
      if (!iu.contains("url")) throw bad_request(url_param + " is required", url_param);
      url = get_string(iu["url"], url_param);
      if (iu.contains("detail")) {
        const std::string d = get_string(iu["detail"], param + ".image_url.detail");
        if (d != "auto" && d != "low" && d != "high")
          throw bad_request(param + ".image_url.detail must be auto, low or high", param + ".image_url.detail");
      }
    } else {
      throw bad_request(param + ".image_url must be an object, got " + type_name(iu), param + ".image_url");
    }
    if (int64_t(req.image_urls.size()) >= limits.max_images)
      throw bad_request("too many images: at most " + std::to_string(limits.max_images) + " per request", param);
    req.image_urls.push_back(check_media_url(url, limits, url_param, "image"));
    req.image_params.push_back(url_param);
    return text::ContentItem::make_image(int64_t(req.image_urls.size()) - 1);
  }
  if (type == "video_url") {
    // ref: vLLM {"type": "video_url", "video_url": {"url": ...}}; qwen-vl-utils' sampling keys
    // (fps, max_frames, min_pixels, max_pixels, total_pixels, ...) may sit beside it.
    if (role != "user") throw bad_request(param + ": videos are only allowed in user messages", param);
    if (!part.contains("video_url")) throw bad_request(param + ".video_url is required", param + ".video_url");
    const json& vu = part["video_url"];
    const std::string url_param = param + ".video_url.url";
    std::string url;
    if (vu.is_string()) {
      url = vu.get<std::string>();
    } else if (vu.is_object()) {
      for (const auto& [k, v] : vu.items())
        if (k != "url") throw bad_request(param + ".video_url: unrecognized field '" + k + "'", param + ".video_url." + k);
      if (!vu.contains("url")) throw bad_request(url_param + " is required", url_param);
      url = get_string(vu["url"], url_param);
    } else {
      throw bad_request(param + ".video_url must be an object, got " + type_name(vu), param + ".video_url");
    }
    try {
      vision::video_options_from_json(part, param);
    } catch (const Error& e) {
      throw bad_request(client_text(e.what()), param);
    }
    if (int64_t(req.video_urls.size()) >= limits.max_videos)
      throw bad_request("too many videos: at most " + std::to_string(limits.max_videos) + " per request", param);
    req.video_urls.push_back(check_media_url(url, limits, url_param, "video"));
    req.video_params.push_back(url_param);
    req.video_items.push_back(part);
    return text::ContentItem::make_video(int64_t(req.video_urls.size()) - 1);
  }
  throw bad_request(param + ".type '" + type + "' is not supported (text, image_url, video_url)", param + ".type");
}

text::Message parse_message(const json& m, ChatRequest& req, const RequestLimits& limits, const std::string& param) {
  if (!m.is_object()) throw bad_request(param + " must be an object, got " + type_name(m), param);
  for (const auto& [k, v] : m.items())
    if (k != "role" && k != "content" && k != "name")
      throw bad_request(param + ": unrecognized field '" + k + "'", param + "." + k);
  if (!m.contains("role")) throw bad_request(param + ".role is required", param + ".role");
  text::Message msg;
  msg.role = get_string(m["role"], param + ".role");
  // ref: OpenAI "developer" messages replace "system" for newer models; Qwen knows system.
  if (msg.role == "developer") msg.role = "system";
  if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
    throw bad_request(param + ".role '" + msg.role + "' is not one of system, developer, user, assistant",
                      param + ".role");
  if (!m.contains("content") || m["content"].is_null())
    throw bad_request(param + ".content is required", param + ".content");
  const json& c = m["content"];
  if (c.is_string()) {
    msg.content.push_back(text::ContentItem::make_text(c.get<std::string>()));
  } else if (c.is_array()) {
    if (c.empty()) throw bad_request(param + ".content must not be an empty array", param + ".content");
    for (size_t i = 0; i < c.size(); ++i)
      msg.content.push_back(parse_part(c[i], msg.role, req, limits, param + ".content[" + std::to_string(i) + "]"));
  } else {
    throw bad_request(param + ".content must be a string or an array of content parts, got " + type_name(c),
                      param + ".content");
  }
  return msg;
}

}  // namespace

bool is_remote_url(std::string_view url) {
  if (starts_with(url, "//")) return true;  // protocol-relative
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  for (size_t i = 0; i < sep; ++i) {
    const char ch = url[i];
    const bool ok = std::isalpha(static_cast<unsigned char>(ch)) ||
                    (i > 0 && (std::isdigit(static_cast<unsigned char>(ch)) || ch == '+' || ch == '-' || ch == '.'));
    if (!ok) return false;  // not a scheme: a path that happens to contain "://"
  }
  std::string scheme(url.substr(0, sep));
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return scheme != "file";
}

ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits) {
  if (body.size() > limits.max_body_bytes)
    throw ApiError(413, "request body is " + std::to_string(body.size()) + " bytes; the limit is " +
                            std::to_string(limits.max_body_bytes) + " (max_body_mb)");
  json j;
  int64_t values = 0;
  const json::parser_callback_t bound = [&](int depth, json::parse_event_t event, json&) {
    if (depth > limits.max_json_depth)
      throw bad_request("request body nests deeper than " + std::to_string(limits.max_json_depth) + " levels");
    if (event == json::parse_event_t::value && ++values > limits.max_json_values)
      throw bad_request("request body has more than " + std::to_string(limits.max_json_values) + " JSON values");
    return true;
  };
  try {
    j = json::parse(body, bound);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for numbers beyond double (1e400): both the client's.
    std::string what = e.what();
    if (what.size() > 200) what = what.substr(0, 200) + "...";
    throw bad_request("request body is not valid JSON: " + what);
  }
  if (!j.is_object()) throw bad_request("request body must be a JSON object, got " + type_name(j));

  static const std::set<std::string> kKnown = {
      "model", "messages", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens",
      "max_completion_tokens", "n", "seed", "stop", "stream", "user", "presence_penalty", "frequency_penalty",
      "logprobs", "top_logprobs", "stream_options", "return_tokens_as_token_ids"};
  for (const auto& [k, v] : j.items())
    if (!kKnown.count(k)) throw bad_request("Unrecognized request argument supplied: " + k, k);
  // OpenAI treats an explicit null as "use the default".
  auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };

  ChatRequest req;
  if (given("model")) req.model = get_string(j["model"], "model");
  // ref: vLLM: a model the server does not serve is 404 NotFoundError; OpenAI's code is model_not_found.
  if (!limits.served_model_name.empty() && !req.model.empty() && req.model != limits.served_model_name)
    throw ApiError(404, "The model `" + req.model + "` does not exist.", "model", "invalid_request_error",
                   "model_not_found");
  if (!j.contains("messages")) throw bad_request("messages is required", "messages");
  const json& msgs = j["messages"];
  if (!msgs.is_array()) throw bad_request("messages must be an array, got " + type_name(msgs), "messages");
  if (msgs.empty()) throw bad_request("messages must contain at least one message", "messages");
  for (size_t i = 0; i < msgs.size(); ++i)
    req.messages.push_back(parse_message(msgs[i], req, limits, "messages[" + std::to_string(i) + "]"));

  if (given("temperature")) {
    req.temperature = get_number(j["temperature"], "temperature");
    check_range(req.temperature, 0.0, 2.0, false, "temperature");
  }
  if (given("top_p")) {
    req.top_p = get_number(j["top_p"], "top_p");
    check_range(req.top_p, 0.0, 1.0, /*lo_open=*/true, "top_p");
  }
  if (given("top_k")) {
    req.top_k = get_integer(j["top_k"], "top_k");
    if (req.top_k < -1) throw bad_request("top_k must be >= 0 (or -1 for off), got " + std::to_string(req.top_k), "top_k");
    if (req.top_k == -1) req.top_k = 0;  // ref: vLLM uses -1 for "all tokens"
  }
  if (given("min_p")) {
    req.min_p = get_number(j["min_p"], "min_p");
    check_range(req.min_p, 0.0, 1.0, false, "min_p");
  }
  if (given("repetition_penalty")) {
    req.repetition_penalty = get_number(j["repetition_penalty"], "repetition_penalty");
    check_range(req.repetition_penalty, 0.0, 10.0, /*lo_open=*/true, "repetition_penalty");
  }
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    if (given(key) && get_number(j[key], key) != 0.0)
      throw bad_request(std::string(key) + " is not supported (use repetition_penalty)", key);
  }
  if (given("logprobs")) {
    if (!j["logprobs"].is_boolean())
      throw bad_request("logprobs must be a boolean, got " + type_name(j["logprobs"]), "logprobs");
    req.logprobs = j["logprobs"].get<bool>();
  }
  if (given("top_logprobs")) {
    // ref: OpenAI: an integer between 0 and 20; logprobs must be true when it is used.
    req.top_logprobs = get_integer(j["top_logprobs"], "top_logprobs");
    if (req.top_logprobs < 0 || req.top_logprobs > kMaxTopLogprobs)
      throw bad_request("top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " +
                            std::to_string(req.top_logprobs),
                        "top_logprobs");
    if (!req.logprobs) throw bad_request("top_logprobs needs logprobs to be true", "top_logprobs");
  }
  if (given("return_tokens_as_token_ids")) {
    // ref: vLLM extension: tokens that are not valid UTF-8 text stay identifiable.
    const json& v = j["return_tokens_as_token_ids"];
    if (!v.is_boolean())
      throw bad_request("return_tokens_as_token_ids must be a boolean, got " + type_name(v), "return_tokens_as_token_ids");
    req.return_tokens_as_token_ids = v.get<bool>();
  }
  if (given("stream")) {
    if (!j["stream"].is_boolean()) throw bad_request("stream must be a boolean, got " + type_name(j["stream"]), "stream");
    req.stream = j["stream"].get<bool>();
  }
  if (given("stream_options")) {
    // ref: vLLM: "Stream options can only be defined when `stream=True`."
    const json& so = j["stream_options"];
    if (!req.stream) throw bad_request("stream_options can only be given when stream is true", "stream_options");
    if (!so.is_object())
      throw bad_request("stream_options must be an object, got " + type_name(so), "stream_options");
    for (const auto& [k, v] : so.items()) {
      if (k != "include_usage")
        throw bad_request("stream_options: unrecognized field '" + k + "'", "stream_options." + k);
      if (v.is_null()) continue;
      if (!v.is_boolean())
        throw bad_request("stream_options.include_usage must be a boolean, got " + type_name(v),
                          "stream_options.include_usage");
      req.include_usage = v.get<bool>();
    }
  }
  if (given("user")) get_string(j["user"], "user");

  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!given(key)) continue;
    const int64_t v = get_integer(j[key], key);
    if (v < 1) throw bad_request(std::string(key) + " must be >= 1, got " + std::to_string(v), key);
    if (v > limits.max_completion_length)
      throw bad_request(std::string(key) + " is " + std::to_string(v) + "; this server allows at most " +
                            std::to_string(limits.max_completion_length) + " (max_completion_length)",
                        key);
    if (req.max_tokens != 0 && req.max_tokens != v)
      throw bad_request("max_tokens and max_completion_tokens disagree", key);
    req.max_tokens = v;
  }
  if (given("n")) {
    req.n = get_integer(j["n"], "n");
    if (req.n < 1 || req.n > limits.max_n)
      throw bad_request("n must be in [1, " + std::to_string(limits.max_n) + "], got " + std::to_string(req.n), "n");
  }
  if (given("seed")) req.seed = get_integer(j["seed"], "seed");
  if (given("stop")) {
    const json& s = j["stop"];
    if (s.is_string()) {
      req.stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      for (size_t i = 0; i < s.size(); ++i) req.stop.push_back(get_string(s[i], "stop[" + std::to_string(i) + "]"));
    } else {
      throw bad_request("stop must be a string or an array of strings, got " + type_name(s), "stop");
    }
    if (int64_t(req.stop.size()) > limits.max_stop)
      throw bad_request("stop has " + std::to_string(req.stop.size()) + " sequences; at most " +
                            std::to_string(limits.max_stop) + " are allowed",
                        "stop");
    for (const std::string& t : req.stop)
      if (t.empty()) throw bad_request("stop sequences must not be empty", "stop");
  }
  return req;
}

std::string canonical_media_dir(const std::string& dir) {
  char resolved[PATH_MAX];
  struct stat st {};
  REFRACT_CHECK(::realpath(dir.c_str(), resolved) != nullptr && ::stat(resolved, &st) == 0 && S_ISDIR(st.st_mode))
      << "allowed_local_media_path: '" << dir << "' is not an existing directory";
  return resolved;
}

std::string read_local_media(const std::string& path, const std::string& allowed_dir, size_t max_bytes,
                             const std::string& param) {
  if (allowed_dir.empty() || !lies_under(path, allowed_dir)) throw local_path_refused(param);
  const int dir_fd = ::open(allowed_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) throw local_path_refused(param);
  const std::string rel = allowed_dir == "/" ? path.substr(1) : path.substr(allowed_dir.size() + 1);
  // Never opens anything outside allowed_dir: `..` and symlinks (even swapped in after
  // parse_chat_request resolved the path) cannot leave it. O_NONBLOCK: a FIFO must not hang.
  struct open_how how {};
  how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof(how)));
  if (fd < 0 && errno == ENOSYS) {
    // Kernels before 5.6: no symlink may appear anywhere on the (already resolved) path.
    fd = ::openat(dir_fd, rel.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    char resolved[PATH_MAX];
    if (fd >= 0 && (::realpath(path.c_str(), resolved) == nullptr || path != resolved)) {
      ::close(fd);
      fd = -1;
    }
  }
  ::close(dir_fd);
  if (fd < 0) throw local_path_refused(param);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw local_path_refused(param);
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    throw ApiError(413, param + ": this local image is larger than the server's limit", param);
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(got);
  return bytes;
}

std::string error_body(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}};
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  // User text echoed in messages may be invalid UTF-8: replace, never throw.
  return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace refract::serve
