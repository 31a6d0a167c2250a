#include "data/validate.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "data/load.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/video.h"

namespace refract::data {

namespace {

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string box_str(const nlohmann::json& b) {
  std::string s = "[";
  for (size_t i = 0; i < b.size(); ++i) s += (i ? ", " : "") + fmt_num(b[i].get<double>());
  return s + "]";
}

// "" or why the box is unusable against an image of w x h (0 = unknown size).
std::string check_box(const nlohmann::json& b, int64_t w, int64_t h) {
  bool ok = b.is_array() && b.size() == 4;
  for (size_t i = 0; ok && i < 4; ++i) ok = b[i].is_number();
  if (!ok) return "box " + b.dump() + " is not [x1, y1, x2, y2]";
  const double x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
  if (!(x2 > x1) || !(y2 > y1)) return "degenerate box " + box_str(b) + " (needs x2 > x1 and y2 > y1)";
  if (w > 0 && h > 0 && (x1 < 0 || y1 < 0 || x2 > static_cast<double>(w) || y2 > static_cast<double>(h)))
    return "box " + box_str(b) + " outside the " + std::to_string(w) + "x" + std::to_string(h) + " image";
  return "";
}

bool is_box(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 4) return false;
  for (const auto& v : j)
    if (!v.is_number()) return false;
  return true;
}

// refract::Error messages start with "[src/file.cpp:line] "; the report wants the reason.
std::string without_location(const std::string& msg) {
  if (msg.empty() || msg[0] != '[') return msg;
  const size_t p = msg.find("] ");
  return p == std::string::npos ? msg : msg.substr(p + 2);
}

std::string file_of(const std::string& source) {
  const size_t p = source.rfind(':');
  return p == std::string::npos ? source : source.substr(0, p);
}

}  // namespace

ValidateOptions validate_options(const DataConfig& cfg, const text::Tokenizer* tokenizer) {
  ValidateOptions o;
  o.check_images = cfg.check_images;
  o.max_prompt_length = cfg.max_prompt_length;
  o.tokenizer = tokenizer;
  o.preprocess.min_pixels = cfg.min_pixels;
  o.preprocess.max_pixels = cfg.max_pixels;
  o.num_threads = std::max<int64_t>(1, cfg.num_workers);
  return o;
}

std::string validate_sample(Sample& s, const ValidateOptions& opts) {
  // 1. Images: present, decodable, a size smart_resize accepts.
  std::vector<int64_t> tokens(s.images.size(), 0);
  for (size_t i = 0; i < s.images.size(); ++i) {
    ImageRef& im = s.images[i];
    if (!opts.check_images) continue;
    const bool data_url = im.path.rfind("data:", 0) == 0;
    if (!data_url && !std::filesystem::exists(im.path)) return "image not found: " + im.path;
    try {
      const vision::Image img = data_url ? vision::decode_data_url(im.path) : vision::decode_image_file(im.path);
      im.width = img.width;
      im.height = img.height;
    } catch (const std::exception& e) {
      std::string why = without_location(e.what());
      // The decoder names the file itself; do not say it twice.
      if (why.rfind(im.path + ": ", 0) == 0) why = why.substr(im.path.size() + 2);
      return "undecodable image " + (data_url ? std::string("(data URL)") : im.path) + ": " + why;
    }
    const std::string size = std::to_string(im.width) + "x" + std::to_string(im.height);
    // ref: transformers Qwen2-VL smart_resize raises for a side < factor (28) and for an
    // aspect ratio > 200.
    if (std::min(im.width, im.height) < 28)
      return "image " + im.path + " is " + size + ": a side is below 28 px";
    const double ratio = static_cast<double>(std::max(im.width, im.height)) /
                         static_cast<double>(std::min(im.width, im.height));
    if (ratio > 200) return "image " + im.path + " is " + size + ": aspect ratio " + fmt_num(ratio) + " is over 200";
    const auto r = vision::smart_resize(im.height, im.width, opts.preprocess);
    tokens[i] = (r.height / opts.preprocess.patch_size) * (r.width / opts.preprocess.patch_size) /
                (opts.preprocess.merge_size * opts.preprocess.merge_size);
  }
  // 1b. Videos: readable, and their token count as sampling (qwen-vl-utils) and the processor
  // will give it, from the container's header (file) or the decoded frames (list of images).
  std::vector<int64_t> video_tokens(s.videos.size(), 0);
  for (size_t i = 0; i < s.videos.size() && opts.check_images; ++i) {
    const VideoRef& v = s.videos[i];
    const std::string shown = v.path.empty() ? "(" + std::to_string(v.frames.size()) + " frames)" : v.path;
    if (!v.path.empty() && !std::filesystem::exists(v.path)) return "video not found: " + v.path;
    try {
      const vision::VideoOptions o = vision::video_options_from_json(v.options, "video " + shown);
      int64_t n = 0;
      vision::ResizedSize size;
      if (!v.path.empty()) {
        const vision::VideoPlan plan = vision::plan_video(vision::probe_video_file(v.path), o);
        n = plan.nframes;
        size = plan.size;
      } else {
        const vision::LoadedVideo lv = vision::load_video_image_list(v.frames, o);
        n = static_cast<int64_t>(lv.frames.size());
        size = {lv.frames[0].height, lv.frames[0].width};
      }
      const auto r = vision::smart_resize(size.height, size.width, opts.preprocess);
      const int64_t tp = opts.preprocess.temporal_patch_size;
      video_tokens[i] = (n + tp - 1) / tp * (r.height / opts.preprocess.patch_size) *
                        (r.width / opts.preprocess.patch_size) / (opts.preprocess.merge_size * opts.preprocess.merge_size);
    } catch (const std::exception& e) {
      std::string why = without_location(e.what());
      if (why.rfind(v.path + ": ", 0) == 0) why = why.substr(v.path.size() + 2);
      return "unusable video " + shown + ": " + why;
    }
  }
  for (auto& m : s.prompt)
    for (auto& item : m.content)
      if (item.kind == text::ContentItem::Kind::kVideo) {
        if (item.video_index < 0 || item.video_index >= static_cast<int64_t>(s.videos.size()))
          return "video item " + std::to_string(item.video_index) + " has no video";
        item.video_tokens = video_tokens[static_cast<size_t>(item.video_index)];
      }
  for (auto& m : s.prompt)
    for (auto& item : m.content)
      if (item.kind == text::ContentItem::Kind::kImage) {
        if (item.image_index < 0 || item.image_index >= static_cast<int64_t>(s.images.size()))
          return "image item " + std::to_string(item.image_index) + " has no image";
        item.image_tokens = tokens[static_cast<size_t>(item.image_index)];
      }

  // 2. Boxes against the image they refer to (the first image); the record's own width /
  // height columns when images are not decoded.
  int64_t w = 0, h = 0;
  if (!s.images.empty() && s.images[0].width > 0) {
    w = s.images[0].width, h = s.images[0].height;
  } else if (s.extra.contains("width") && s.extra["width"].is_number_integer() && s.extra.contains("height") &&
             s.extra["height"].is_number_integer()) {
    w = s.extra["width"], h = s.extra["height"];
  }
  if (s.task == "rec" || is_box(s.solution)) {
    if (auto r = check_box(s.solution, w, h); !r.empty()) return r;
  } else if (s.task == "det" && s.solution.is_array()) {
    for (const auto& o : s.solution) {
      if (!o.is_object() || !o.contains("bbox_2d")) return "detection ground truth entry " + o.dump() + " has no bbox_2d";
      if (auto r = check_box(o["bbox_2d"], w, h); !r.empty()) return r;
    }
  }

  // 3. Prompt length, as the trainer will tokenize it.
  if (opts.tokenizer && opts.max_prompt_length > 0) {
    const auto enc = text::apply_chat_template(*opts.tokenizer, s.prompt, /*add_generation_prompt=*/true);
    const int64_t n = static_cast<int64_t>(enc.ids.size());
    if (n > opts.max_prompt_length) {
      const int32_t pad = opts.tokenizer->token_to_id("<|image_pad|>");
      int64_t first_pad = -1, pads = 0;
      for (int64_t i = 0; i < n; ++i)
        if (enc.ids[static_cast<size_t>(i)] == pad) {
          if (first_pad < 0) first_pad = i;
          ++pads;
        }
      const int64_t cut = n - opts.max_prompt_length;  // TRL keeps the last max_prompt_length
      if (pads > 0 && first_pad < cut)
        return "image tokens would be truncated: prompt is " + std::to_string(n) + " tokens (" +
               std::to_string(pads) + " image tokens), max_prompt_length " +
               std::to_string(opts.max_prompt_length) + " cuts the first " + std::to_string(cut);
      return "prompt is " + std::to_string(n) + " tokens, longer than max_prompt_length " +
             std::to_string(opts.max_prompt_length);
    }
  }
  return "";
}

void validate_dataset(Dataset& d, const ValidateOptions& opts) {
  std::vector<std::string> reasons(d.samples.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < d.samples.size(); i = next++) {
      try {
        reasons[i] = validate_sample(d.samples[i], opts);
      } catch (const std::exception& e) {
        reasons[i] = without_location(e.what());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < opts.num_threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  std::map<std::string, FileReport*> by_file;
  for (auto& r : d.reports) by_file[r.file] = &r;
  std::vector<Sample> kept;
  kept.reserve(d.samples.size());
  for (size_t i = 0; i < d.samples.size(); ++i) {
    if (reasons[i].empty()) {
      kept.push_back(std::move(d.samples[i]));
      continue;
    }
    const std::string file = file_of(d.samples[i].source);
    FileReport* r = by_file.count(file) ? by_file[file] : nullptr;
    if (!r) {
      d.reports.push_back(FileReport{file, 0, 0, {}, {}});
      r = &d.reports.back();
      by_file.clear();
      for (auto& x : d.reports) by_file[x.file] = &x;
    }
    r->rejected.push_back({d.samples[i].source, reasons[i]});
    --r->usable;
  }
  d.samples = std::move(kept);
  // Report rejections in file order (loading and validation ones interleaved by line).
  for (auto& r : d.reports)
    std::stable_sort(r.rejected.begin(), r.rejected.end(), [](const Rejection& a, const Rejection& b) {
      const size_t pa = a.where.rfind(':'), pb = b.where.rfind(':');
      return std::atoll(a.where.c_str() + pa + 1) < std::atoll(b.where.c_str() + pb + 1);
    });
}

int64_t drop_longer_than(Dataset& d, int64_t max_length, const text::Tokenizer& tok) {
  if (max_length <= 0) return 0;
  std::map<std::string, FileReport*> by_file;
  for (auto& r : d.reports) by_file[r.file] = &r;
  std::vector<Sample> kept;
  kept.reserve(d.samples.size());
  int64_t dropped = 0;
  for (Sample& s : d.samples) {
    std::vector<text::Message> messages = s.prompt;
    if (!s.response.empty()) {
      text::Message a;
      a.role = "assistant";
      a.content.push_back(text::ContentItem::make_text(s.response));
      messages.push_back(a);
    }
    const int64_t n = static_cast<int64_t>(text::apply_chat_template(tok, messages, s.response.empty()).ids.size());
    if (n <= max_length) {
      kept.push_back(std::move(s));
      continue;
    }
    ++dropped;
    const std::string file = file_of(s.source);
    if (!by_file.count(file)) {
      d.reports.push_back(FileReport{file, 0, 0, {}, {}});
      by_file.clear();
      for (auto& x : d.reports) by_file[x.file] = &x;
    }
    FileReport* r = by_file[file];
    r->dropped.push_back({s.source, std::to_string(n) + " tokens, longer than max_length " + std::to_string(max_length)});
    --r->usable;
  }
  d.samples = std::move(kept);
  return dropped;
}

namespace {
Dataset load_and_validate(const DataConfig& cfg, const text::Tokenizer* tokenizer) {
  Dataset d = load_dataset(cfg);
  validate_dataset(d, validate_options(cfg, tokenizer));
  return d;
}
}  // namespace

Dataset prepare_dataset(const DataConfig& cfg, const text::Tokenizer* tokenizer) {
  Dataset d = load_and_validate(cfg, tokenizer);
  const std::string report = format_report(d);
  if (d.num_rejected() > 0) {
    REFRACT_CHECK(cfg.on_bad_sample != "error")
        << d.num_rejected() << " bad sample(s) (on_bad_sample=error; use skip to train without them):\n"
        << report;
    LOG_WARN("skipping {} bad sample(s) (on_bad_sample=skip):\n{}", d.num_rejected(), report);
  } else {
    LOG_INFO("data: {} samples from {} file(s)", d.samples.size(), d.reports.size());
  }
  REFRACT_CHECK(!d.samples.empty()) << "no usable samples:\n" << report;
  return d;
}

int run_data_check(const DataConfig& cfg, int64_t max_length) {
  std::unique_ptr<text::Tokenizer> tok;
  if (!cfg.tokenizer_path.empty()) tok = std::make_unique<text::Tokenizer>(text::Tokenizer::from_file(cfg.tokenizer_path));
  Dataset d = load_and_validate(cfg, tok.get());
  if (tok) drop_longer_than(d, max_length, *tok);
  std::fputs(format_report(d).c_str(), stdout);
  if (!tok && (cfg.max_prompt_length > 0 || max_length > 0))
    std::fputs("note: prompt lengths not checked (set tokenizer_path)\n", stdout);
  if (d.num_rejected() > 0 && cfg.on_bad_sample == "error") return 1;
  return 0;
}

}  // namespace refract::data
