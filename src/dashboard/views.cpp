#include "dashboard/views.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "common/atomic_file.h"
#include "rewards/predicted_boxes.h"
#include "vision/image.h"

namespace fs = std::filesystem;

namespace refract::dashboard {
namespace {

using rewards::DetItem;

nlohmann::json box_json(const metrics::Box& b) { return {b.x1, b.y1, b.x2, b.y2}; }

// The image sizes and path a log line gives: completions.jsonl "images": [{path, width, ...}],
// prediction / reference lines "image", "width", "height", "resized_width", "resized_height".
std::vector<rewards::ImageSize> images_of(const nlohmann::json& line) {
  std::vector<rewards::ImageSize> out;
  auto size_of = [](const nlohmann::json& j) {
    rewards::ImageSize im;
    im.path = j.value("path", j.value("image", std::string()));
    im.width = j.value("width", int64_t{0});
    im.height = j.value("height", int64_t{0});
    im.resized_width = j.value("resized_width", int64_t{0});
    im.resized_height = j.value("resized_height", int64_t{0});
    return im;
  };
  if (auto it = line.find("images"); it != line.end() && it->is_array()) {
    for (const auto& j : *it)
      if (j.is_object()) out.push_back(size_of(j));
  } else if (line.contains("image") && line["image"].is_string()) {
    out.push_back(size_of(line));
  }
  return out;
}

std::string task_of(const std::string& task, const nlohmann::json& solution) {
  if (!task.empty()) return task;
  return rewards::solution_boxes(solution, "rec").empty() ? "" : "rec";
}

std::string text_of(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Predicted boxes of one completion and their matches, as the rewards read them.
struct Reading {
  std::vector<DetItem> pred;
  std::vector<int> match;     // index into gt or -1
  std::vector<double> iou;    // with the matched (rec: the) ground-truth box
  std::string error;          // why the boxes could not be read ("" = they were)
};

void read_boxes_into(const std::string& completion, const nlohmann::json& solution, const std::string& task,
                     const std::vector<rewards::ImageSize>& images, const std::string& coords,
                     const std::vector<DetItem>& gt, Reading* out);

Reading read_boxes(const std::string& completion, const nlohmann::json& solution, const std::string& task,
                   const std::vector<rewards::ImageSize>& images, const std::string& coords,
                   const std::vector<DetItem>& gt) {
  Reading r;
  try {
    read_boxes_into(completion, solution, task, images, coords, gt, &r);
  } catch (const std::exception& e) {
    // A log the rewards could not have read either (e.g. sizes smart_resize rejects): shown, not fatal.
    r = Reading();
    r.error = e.what();
  }
  return r;
}

void read_boxes_into(const std::string& completion, const nlohmann::json& solution, const std::string& task,
                     const std::vector<rewards::ImageSize>& images, const std::string& coords,
                     const std::vector<DetItem>& gt, Reading* out) {
  Reading& r = *out;
  rewards::RewardInput in;
  in.completion = completion;
  in.solution = solution;
  in.images = images;
  rewards::BoxReading reading;
  reading.coords = rewards::parse_coord_mode(coords.empty() ? "absolute_resized" : coords);
  if (task == "det") {
    r.pred = rewards::det_predicted_items(in, reading);
    r.match = rewards::match_predictions(r.pred, gt);
  } else if (task == "rec" || task.empty()) {
    if (auto b = rewards::rec_predicted_box(in, reading)) {
      r.pred.push_back({*b, "", std::nullopt});
      r.match.push_back(gt.empty() ? -1 : 0);
    }
  }
  for (size_t i = 0; i < r.pred.size(); ++i)
    r.iou.push_back(r.match[i] >= 0 ? metrics::iou(r.pred[i].box, gt[static_cast<size_t>(r.match[i])].box) : 0.0);
}

nlohmann::json boxes_json(const Reading& r) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < r.pred.size(); ++i) {
    nlohmann::json b = {{"box", box_json(r.pred[i].box)}, {"match", r.match[i]}, {"iou", r.iou[i]}};
    if (!r.pred[i].label.empty()) b["label"] = r.pred[i].label;
    if (r.pred[i].confidence) b["confidence"] = *r.pred[i].confidence;
    out.push_back(std::move(b));
  }
  return out;
}

nlohmann::json gt_json(const std::vector<DetItem>& gt) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : gt) {
    nlohmann::json b = {{"box", box_json(g.box)}};
    if (!g.label.empty()) b["label"] = g.label;
    out.push_back(std::move(b));
  }
  return out;
}

nlohmann::json image_json(int64_t run, const std::vector<rewards::ImageSize>& images) {
  if (images.empty() || images[0].path.empty() || images[0].path == "data:") return nullptr;
  const auto& im = images[0];
  return {{"url", Dashboard::image_url(run, im.path)}, {"path", im.path}, {"width", im.width}, {"height", im.height}};
}

int64_t step_of(const nlohmann::json& rec) {
  if (auto it = rec.find("step"); it != rec.end() && it->is_number_integer()) return it->get<int64_t>();
  if (auto it = rec.find("round"); it != rec.end() && it->is_number_integer()) return it->get<int64_t>();
  return 0;
}

std::string content_type_of(const std::string& bytes) {
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) return "image/png";
  if (bytes.compare(0, 3, "\xff\xd8\xff") == 0) return "image/jpeg";
  if (bytes.compare(0, 4, "RIFF") == 0) return "image/webp";
  if (bytes.compare(0, 2, "BM") == 0) return "image/bmp";
  return "application/octet-stream";
}

}  // namespace

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') out += static_cast<char>(c);
    else out += '%', out += hex[c >> 4], out += hex[c & 15];
  }
  return out;
}

Dashboard::Dashboard(std::vector<Run> runs) : runs_(std::move(runs)), logged_images_(runs_.size()) {}

std::string Dashboard::image_url(int64_t run, const std::string& path) {
  return "/api/image?run=" + std::to_string(run) + "&path=" + url_encode(path);
}

const Run& Dashboard::run_at(int64_t run) const {
  if (run < 0 || run >= static_cast<int64_t>(runs_.size()))
    throw RequestError(404, "no run " + std::to_string(run) + " (there are " + std::to_string(runs_.size()) + ")");
  return runs_[static_cast<size_t>(run)];
}

void Dashboard::allow_image(int64_t run, const std::string& path) {
  if (path.empty() || path == "data:") return;
  std::lock_guard<std::mutex> lock(mu_);
  logged_images_[static_cast<size_t>(run)].insert(path);
}

nlohmann::json Dashboard::runs_json() {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < runs_.size(); ++i) {
    const Run& r = runs_[i];
    nlohmann::json evals = nlohmann::json::array();
    for (const auto& e : find_eval_sets(r)) evals.push_back({{"name", e.name}, {"kind", e.kind}});
    std::error_code ec;
    out.push_back({{"id", i},
                   {"name", r.name},
                   {"dir", r.dir},
                   {"metrics", fs::is_regular_file(r.dir + "/metrics.jsonl", ec)},
                   {"completions", fs::is_regular_file(r.dir + "/completions.jsonl", ec)},
                   {"evals", evals}});
  }
  return {{"runs", out}};
}

nlohmann::json Dashboard::metrics_json(int64_t run) {
  const Run& r = run_at(run);
  const auto lines = cache_.read(r.dir + "/metrics.jsonl", /*append_only=*/false);
  std::set<std::string> keys;
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& l : lines->lines) {
    nlohmann::json e = nlohmann::json::object();
    for (const auto& [k, v] : l.items())
      if (v.is_number() && std::isfinite(v.get<double>())) {
        e[k] = v;
        if (k != "step" && k != "wall_time" && k != "epoch") keys.insert(k);
      }
    if (e.contains("step")) entries.push_back(std::move(e));
  }
  return {{"run", run}, {"keys", keys}, {"entries", entries}, {"errors", lines->errors}};
}

nlohmann::json Dashboard::rollouts_json(int64_t run, std::optional<int64_t> step) {
  const Run& r = run_at(run);
  const auto lines = cache_.read(r.dir + "/completions.jsonl", /*append_only=*/true);
  std::map<int64_t, int64_t> count;
  for (const auto& l : lines->lines) ++count[step_of(l)];
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& [s, n] : count) steps.push_back({{"step", s}, {"n", n}});
  nlohmann::json out = {{"run", run}, {"steps", steps}, {"errors", lines->errors}, {"groups", nlohmann::json::array()}};
  if (count.empty()) {
    out["step"] = nullptr;
    return out;
  }
  const int64_t want = step ? *step : count.rbegin()->first;
  if (!count.count(want)) throw RequestError(404, "run " + r.name + " logged no completions at step " + std::to_string(want));
  out["step"] = want;
  // Groups in log order: one per (round, sample), its G completions inside.
  std::map<std::pair<int64_t, std::string>, size_t> group_of;
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& l : lines->lines) {
    if (step_of(l) != want) continue;
    const nlohmann::json solution = l.value("solution", nlohmann::json());
    const std::string task = task_of(l.value("task", std::string()), solution);
    const auto images = images_of(l);
    const auto gt = rewards::solution_boxes(solution, task);
    const std::string sample = text_of(l.value("sample", nlohmann::json("")));
    const auto key = std::make_pair(l.value("round", int64_t{0}), sample);
    auto [it, fresh] = group_of.emplace(key, groups.size());
    if (fresh) {
      if (!images.empty()) allow_image(run, images[0].path);
      groups.push_back({{"sample", sample},
                        {"round", key.first},
                        {"task", task},
                        {"prompt", l.value("prompt", std::string())},
                        {"solution", solution},
                        {"image", image_json(run, images)},
                        {"gt", gt_json(gt)},
                        {"completions", nlohmann::json::array()}});
    }
    const std::string completion = l.value("completion", std::string());
    const Reading rd = read_boxes(completion, solution, task, images, l.value("coordinate_format", std::string()), gt);
    nlohmann::json rewards = l.value("rewards", nlohmann::json::object());
    // A format failure: the `format` reward said 0, or (without it) no box / answer was read.
    bool format_ok = true;
    if (auto f = rewards.find("format"); f != rewards.end() && f->is_number()) format_ok = f->get<double>() > 0;
    else if (task == "rec" || task == "det") format_ok = !rd.pred.empty();
    else format_ok = rewards::extract_answer(completion).has_value();
    groups[it->second]["completions"].push_back({{"generation", l.value("generation", int64_t{-1})},
                                                 {"completion", completion},
                                                 {"answer", rewards::answer_or_text(completion)},
                                                 {"reward", l.value("reward", nlohmann::json())},
                                                 {"rewards", rewards},
                                                 {"advantage", l.value("advantage", nlohmann::json())},
                                                 {"truncated", l.value("truncated", false)},
                                                 {"format_ok", format_ok},
                                                 {"boxes", boxes_json(rd)}});
    if (!rd.error.empty()) groups[it->second]["completions"].back()["box_error"] = rd.error;
  }
  out["groups"] = std::move(groups);
  return out;
}

nlohmann::json Dashboard::eval_json(int64_t run, const std::string& name) {
  const Run& r = run_at(run);
  std::optional<EvalSet> set;
  for (auto& e : find_eval_sets(r))
    if (e.name == name) set = e;
  if (!set) throw RequestError(404, "run " + r.name + " has no evaluation '" + name + "'");
  nlohmann::json samples = nlohmann::json::array();
  nlohmann::json summary = nlohmann::json::object();
  std::string task = "rec";
  if (set->kind == "demo") {
    // refract demo: {id, completion, iou, solution, image, sizes, coordinate_format}, scored by `iou`.
    const auto lines = cache_.read(set->path, false);
    double hits = 0, iou_sum = 0;
    for (const auto& l : lines->lines) {
      const nlohmann::json solution = l.value("solution", nlohmann::json());
      const auto images = images_of(l);
      const auto gt = rewards::solution_boxes(solution, "rec");
      const std::string completion = l.value("completion", std::string());
      const Reading rd = read_boxes(completion, solution, "rec", images, l.value("coordinate_format", std::string()), gt);
      const double iou = l.value("iou", rd.iou.empty() ? 0.0 : rd.iou[0]);
      hits += iou > 0.5, iou_sum += iou;
      if (!images.empty()) allow_image(run, images[0].path);
      samples.push_back({{"id", text_of(l.value("id", nlohmann::json("")))},
                         {"image", image_json(run, images)},
                         {"gt", gt_json(gt)},
                         {"pred", boxes_json(rd)},
                         {"iou", iou},
                         {"correct", iou > 0.5},
                         {"completion", completion},
                         {"answer", rewards::answer_or_text(completion)},
                         {"solution", solution}});
    }
    const double n = static_cast<double>(samples.size());
    summary = {{"n", samples.size()}, {"acc50", n ? hits / n : 0.0}, {"mean_iou", n ? iou_sum / n : 0.0}};
  } else {
    // refract eval / eval_strategy steps: eval.json holds the scorer's verdict per sample
    // (rec: the box it read, its IoU); predictions + references hold the text and the images.
    nlohmann::json report = nlohmann::json::object();
    const std::string report_path = set->path + "/eval.json";
    std::error_code ec;
    if (fs::is_regular_file(report_path, ec)) {
      report = nlohmann::json::parse(read_file(report_path), nullptr, false);
      if (!report.is_object()) throw RequestError(500, report_path + ": invalid JSON");
    }
    task = report.value("task", std::string("rec"));
    summary = report.value("summary", nlohmann::json::object());
    const std::string coords = report.value("coordinate_format", std::string("absolute_resized"));
    const auto preds = cache_.read(set->path + "/predictions.jsonl", false);
    const auto refs = cache_.read(set->path + "/references.jsonl", false);
    std::map<std::string, const nlohmann::json*> pred_of;
    for (const auto& p : preds->lines) pred_of[text_of(p.value("id", nlohmann::json("")))] = &p;
    const nlohmann::json scored = report.value("samples", nlohmann::json::array());
    for (size_t i = 0; i < refs->lines.size(); ++i) {
      const auto& ref = refs->lines[i];
      const std::string id = text_of(ref.value("id", nlohmann::json("")));
      const nlohmann::json solution = ref.value("solution", nlohmann::json());
      const auto images = images_of(ref);
      const auto gt = rewards::solution_boxes(solution, task);
      auto pit = pred_of.find(id);
      const std::string completion = pit == pred_of.end() ? "" : pit->second->value("prediction", std::string());
      nlohmann::json s = {{"id", id},
                          {"image", image_json(run, images)},
                          {"gt", gt_json(gt)},
                          {"completion", completion},
                          {"answer", rewards::answer_or_text(completion)},
                          {"solution", solution}};
      const nlohmann::json verdict = i < scored.size() && scored[i].is_object() ? scored[i] : nlohmann::json::object();
      if (task == "rec" && verdict.contains("iou")) {
        // The box the scorer read (original pixels) and its IoU, as eval.json states them.
        nlohmann::json pred = nlohmann::json::array();
        if (verdict.contains("box")) pred.push_back({{"box", verdict["box"]}, {"match", 0}, {"iou", verdict["iou"]}});
        s["pred"] = pred;
        s["iou"] = verdict["iou"];
      } else {
        s["pred"] = boxes_json(read_boxes(completion, solution, task, images, coords, gt));
      }
      if (verdict.contains("correct")) s["correct"] = verdict["correct"];
      if (!images.empty()) allow_image(run, images[0].path);
      samples.push_back(std::move(s));
    }
  }
  return {{"run", run}, {"name", name}, {"kind", set->kind}, {"task", task}, {"summary", summary}, {"samples", samples}};
}

FileReply Dashboard::image(int64_t run, const std::string& path) {
  const Run& r = run_at(run);
  std::string resolved;
  auto is_logged = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return logged_images_[static_cast<size_t>(run)].count(path) > 0;
  };
  bool logged = is_logged();
  if (!logged) {
    // Not seen yet by this process: read the run's logs (cached) for the images they name.
    for (const auto& l : cache_.read(r.dir + "/completions.jsonl", true)->lines)
      for (const auto& im : images_of(l)) allow_image(run, im.path);
    for (const auto& e : find_eval_sets(r)) {
      const std::string file = e.kind == "demo" ? e.path : e.path + "/references.jsonl";
      for (const auto& l : cache_.read(file, false)->lines)
        for (const auto& im : images_of(l)) allow_image(run, im.path);
    }
    logged = is_logged();
  }
  if (logged) {
    // A path the run's logs name, as the trainer opened it (relative paths: from the
    // dashboard's working directory, else from the run directory's ancestors).
    std::error_code ec;
    if (fs::path(path).is_absolute() || fs::is_regular_file(path, ec)) resolved = path;
    else
      for (fs::path base = fs::path(r.dir); !base.empty() && base != base.parent_path(); base = base.parent_path())
        if (fs::is_regular_file(base / path, ec)) {
          resolved = (base / path).string();
          break;
        }
    if (resolved.empty()) throw RequestError(404, "image " + path + " (named by the logs of " + r.name + ") not found");
  } else {
    const std::string candidate = fs::path(path).is_absolute() ? path : r.dir + "/" + path;
    auto inside = confined_path(r.root, candidate);
    if (!inside)
      throw RequestError(403, "image path " + path + " is neither named by the logs of run " + r.name +
                                  " nor inside its directory");
    resolved = *inside;
  }
  std::string bytes;
  try {
    bytes = read_file(resolved);
    vision::decode_image_bytes(bytes, resolved);  // only images leave the dashboard
  } catch (const Error& e) {
    throw RequestError(415, std::string("not a readable image: ") + e.what());
  }
  const std::string type = content_type_of(bytes);
  return {std::move(bytes), type};
}

FileReply Dashboard::file(int64_t run, const std::string& relative_path) {
  const Run& r = run_at(run);
  if (relative_path.empty() || fs::path(relative_path).is_absolute())
    throw RequestError(400, "path must be relative to the run directory");
  auto inside = confined_path(r.root, r.dir + "/" + relative_path);
  if (!inside) throw RequestError(403, "path " + relative_path + " is outside the run directory " + r.dir);
  std::error_code ec;
  if (!fs::is_regular_file(*inside, ec)) throw RequestError(404, relative_path + " is not a file");
  const std::string ext = fs::path(*inside).extension().string();
  std::string type = "application/octet-stream";
  if (ext == ".json") type = "application/json";
  else if (ext == ".jsonl" || ext == ".md" || ext == ".txt" || ext == ".yaml") type = "text/plain; charset=utf-8";
  return {read_file(*inside), type};
}

}  // namespace refract::dashboard
