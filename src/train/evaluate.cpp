#include "train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "data/load.h"
#include "data/rng.h"
#include "data/sample.h"
#include "data/validate.h"
#include "generate/decode_batch.h"
#include "generate/generator.h"
#include "rewards/registry.h"
#include "rewards/score.h"
#include "text/tokenizer.h"
#include "train/encode.h"

namespace fs = std::filesystem;

namespace refract::train {

namespace {
// The first image of a prediction / reference line: its sizes (to map coordinates back) and its
// path (`refract dashboard` draws on it; a data URL is not repeated).
void add_image_fields(const rewards::ImageSize& im, nlohmann::json* line) {
  (*line)["image"] = data::logged_media_path(im.path);
  (*line)["width"] = im.width, (*line)["height"] = im.height;
  (*line)["resized_width"] = im.resized_width, (*line)["resized_height"] = im.resized_height;
}
}  // namespace

std::vector<std::vector<GreedyCompletion>> generate_for_eval(const model::OpenedModel& m,
                                                             const std::vector<data::Sample>& samples,
                                                             const EvalGeneration& g) {
  REFRACT_CHECK(g.batch_size >= 1) << "per_device_eval_batch_size must be >= 1, got " << g.batch_size;
  REFRACT_CHECK(g.num_samples_per_prompt >= 1)
      << "num_samples_per_prompt must be >= 1, got " << g.num_samples_per_prompt;
  model::Qwen2_5_VLImpl& model = *m.model.ptr();  // generation mutates the module (KV cache, mode)
  const text::Tokenizer& tok = m.tok();
  const bool was_training = model.is_training();
  model.eval();
  const int64_t k = g.num_samples_per_prompt;
  std::vector<std::vector<GreedyCompletion>> out(samples.size(), std::vector<GreedyCompletion>(static_cast<size_t>(k)));
  // Every prompt goes through one continuous batch (generate::decode_all, the engine of
  // `refract serve`): prompts join in groups, prefilled together, as rows free up (batch_size * k
  // rows at most), so a long completion never holds back a whole batch. The draws are those of
  // fixed batches of batch_size prompts: seed derived from the batch's first sample, stream =
  // position in the batch * k + j (generate()'s rule for one call per batch).
  std::vector<EncodedSample> enc(samples.size());
  auto make = [&](size_t i) {
    enc[i] = encode_sample(samples[i], tok, m.processor, false);
    const size_t first = i - i % static_cast<size_t>(g.batch_size);
    generate::DecodeRequest r;
    r.prompt = prompt_input(enc[i]);
    enc[i].pixel_values = torch::Tensor();  // held by the request until its prefill only
    enc[i].pixel_values_videos = torch::Tensor();
    r.config.sampling.do_sample = k > 1;
    r.config.sampling.temperature = g.temperature;
    r.config.sampling.top_p = g.top_p;
    r.config.sampling.top_k = g.top_k;
    r.config.seed = static_cast<int64_t>(data::derive_seed(static_cast<uint64_t>(g.seed), first) >> 1);
    r.config.first_stream = static_cast<int64_t>(i - first) * k;
    r.config.max_new_tokens = g.max_new_tokens;
    r.config.stop_token_ids = m.stop_token_ids;
    r.num_generations = k;
    return r;
  };
  const auto completions = generate::decode_all(model, samples.size(), make, g.batch_size * k);
  for (size_t i = 0; i < samples.size(); ++i) {
    for (const generate::Completion& c : completions[i]) {
      GreedyCompletion& out_c = out[i][static_cast<size_t>(c.generation_index)];
      out_c.ids.assign(c.ids.begin(), c.ids.end());
      out_c.completion = tok.decode(out_c.ids, true);
      out_c.prompt = enc[i].prompt_text;
      out_c.images = enc[i].image_sizes;
    }
  }
  if (was_training) model.train();
  return out;
}

std::vector<GreedyCompletion> generate_greedy(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                                              int64_t batch_size, int64_t max_new_tokens) {
  EvalGeneration g;
  g.batch_size = batch_size;
  g.max_new_tokens = max_new_tokens;
  auto all = generate_for_eval(m, samples, g);
  std::vector<GreedyCompletion> out;
  out.reserve(all.size());
  for (auto& a : all) out.push_back(std::move(a[0]));
  return out;
}

// ---- data ------------------------------------------------------------------------------

namespace {

// A COCO instances file (an object with images / annotations / categories), parsed; nullopt
// for any other data file.
std::optional<nlohmann::json> read_coco_instances(const std::string& path) {
  if (fs::path(path).extension() != ".json") return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // the loader reports what is wrong with it
  }
  if (!j.is_object() || !j.contains("images") || !j.contains("annotations") || !j.contains("categories"))
    return std::nullopt;
  return j;
}

std::string resolve_task(const std::string& task, const std::vector<data::Sample>& samples, const std::string& name) {
  std::string t = task;
  if (t == "auto") {
    std::set<std::string> tasks;
    for (const auto& s : samples) tasks.insert(s.task);
    std::string list;
    for (const auto& x : tasks) list += (list.empty() ? "" : ", ") + (x.empty() ? std::string("(none)") : x);
    REFRACT_CHECK(tasks.size() == 1 && !tasks.begin()->empty())
        << name << ": the samples do not name one task (" << list << "); set the task explicitly";
    t = *tasks.begin();
  }
  REFRACT_CHECK(t == "rec" || t == "det" || t == "count" || t == "ocr" || t == "cls")
      << name << ": task '" << t << "': evaluation computes rec | det | count | ocr | cls metrics";
  return t;
}

// Unique row names: the file stem, suffixed when two files share one.
std::string unique_name(const std::string& base, std::set<std::string>* used) {
  std::string n = base;
  for (int i = 2; used->count(n); ++i) n = base + "-" + std::to_string(i);
  used->insert(n);
  return n;
}

// The categories a det prompt asks for: Visual-RFT style names one (`category`), the shapes
// world lists its (`categories`); none = every category (PR1 style).
std::vector<std::string> asked_categories(const data::Sample& s) {
  std::vector<std::string> out;
  if (auto it = s.extra.find("category"); it != s.extra.end() && it->is_string()) out.push_back(it->get<std::string>());
  if (auto it = s.extra.find("categories"); out.empty() && it != s.extra.end() && it->is_array())
    for (const auto& c : *it)
      if (c.is_string()) out.push_back(c.get<std::string>());
  return out;
}

}  // namespace

std::vector<EvalDataset> load_eval_datasets(const data::DataConfig& dc_in, const model::OpenedModel& m,
                                            const std::string& task, int64_t max_samples, bool separate) {
  // Validation counts image tokens with the processor the model will use.
  data::DataConfig dc = dc_in;
  dc.min_pixels = m.processor.min_pixels;
  dc.max_pixels = m.processor.max_pixels;
  const auto specs = data::file_specs(dc);
  REFRACT_CHECK(!specs.empty()) << "evaluation data: no data file given (data_file_paths or dataset_name)";
  std::vector<std::vector<data::FileSpec>> groups;
  if (separate)
    for (const auto& s : specs) groups.push_back({s});
  else
    groups.push_back(specs);
  data::LoadOptions lo;
  lo.question_template = dc.question_template;
  lo.coco_prompt_style = dc.coco_prompt_style;
  lo.data_seed = data::effective_data_seed(dc);
  const auto vo = data::validate_options(dc, &m.tok());
  std::vector<EvalDataset> out;
  std::set<std::string> used;
  for (const auto& group : groups) {
    EvalDataset d;
    d.name = unique_name(separate ? fs::path(group[0].path).stem().string() : "eval", &used);
    data::Dataset ds;
    for (const auto& spec : group) {
      d.files.push_back(spec.path);
      ds.reports.push_back(data::load_file(spec, lo, &ds.samples));
    }
    data::validate_dataset(ds, vo);
    // The same rule as training data: bad samples stop, or are reported and left out.
    if (ds.num_rejected() > 0) {
      REFRACT_CHECK(dc.on_bad_sample != "error")
          << d.name << ": " << ds.num_rejected() << " bad sample(s) (on_bad_sample=error):\n" << data::format_report(ds);
      LOG_WARN("{}: leaving out {} bad sample(s):\n{}", d.name, ds.num_rejected(), data::format_report(ds));
    }
    REFRACT_CHECK(!ds.samples.empty()) << d.name << ": no usable samples:\n" << data::format_report(ds);
    d.rejected = ds.num_rejected();
    d.samples = std::move(ds.samples);
    if (max_samples > 0 && static_cast<int64_t>(d.samples.size()) > max_samples)
      d.samples.resize(static_cast<size_t>(max_samples));
    d.task = resolve_task(task, d.samples, d.name);
    if (d.task == "det" && group.size() == 1)
      if (auto j = read_coco_instances(group[0].path)) d.coco_gt = metrics::coco_gt_from_json(*j, group[0].path);
    out.push_back(std::move(d));
  }
  return out;
}

// ---- scoring -----------------------------------------------------------------------------

namespace {

nlohmann::json reference_line(const data::Sample& s, const GreedyCompletion& c) {
  nlohmann::json ref = {{"id", s.id}, {"solution", s.solution}};
  if (!c.images.empty()) add_image_fields(c.images[0], &ref);
  return ref;
}

// The numbers of a summary (nested values such as per_class left out; "n" is a count).
std::map<std::string, double> numbers_of(const nlohmann::json& summary) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : summary.items())
    if (v.is_number() && k != "n") out[k] = v.get<double>();
  return out;
}

// pass@j for j = 1, 2, 4, ... < k, and k.
std::vector<int64_t> pass_ks(int64_t k) {
  std::vector<int64_t> ks;
  for (int64_t j = 1; j < k; j *= 2) ks.push_back(j);
  ks.push_back(k);
  return ks;
}

// The ground truth det answers are scored against, and each sample's COCO image id. A COCO
// file's own ground truth is narrowed to what was asked: the images of the evaluated prompts,
// and on each image the categories some prompt asked for (all, for a PR1 prompt), so that
// max_samples or a per-category prompt left out never turns boxes nobody asked for into misses.
metrics::CocoGroundTruth det_truth_for(const EvalDataset& d, std::vector<int64_t>* image_of) {
  image_of->clear();
  if (!d.coco_gt) {
    std::vector<rewards::DetTruth> truths;
    for (const auto& s : d.samples)
      truths.push_back({s.images.empty() ? s.id : s.images[0].path, s.solution, asked_categories(s), s.source});
    return rewards::det_ground_truth(truths, image_of);
  }
  const metrics::CocoGroundTruth& full = *d.coco_gt;
  std::map<std::string, int64_t> cat_id;
  for (const auto& [id, name] : full.categories) cat_id[name] = id;
  std::map<int64_t, std::set<int64_t>> asked;  // image -> categories (-1 = all)
  std::vector<int64_t> order;
  for (const auto& s : d.samples) {
    auto it = s.extra.find("image_id");
    REFRACT_CHECK(it != s.extra.end() && it->is_number_integer())
        << s.source << ": a COCO det sample without its image_id";
    const int64_t img = it->get<int64_t>();
    image_of->push_back(img);
    if (!asked.count(img)) order.push_back(img);
    auto& cats = asked[img];
    const auto names = asked_categories(s);
    if (names.empty()) cats.insert(-1);
    for (const auto& n : names) {
      auto c = cat_id.find(n);
      REFRACT_CHECK(c != cat_id.end()) << s.source << ": category '" << n << "' is not in the COCO file";
      cats.insert(c->second);
    }
  }
  metrics::CocoGroundTruth gt;
  gt.categories = full.categories;
  gt.image_ids = order;
  for (const auto& a : full.annotations) {
    auto it = asked.find(a.image_id);
    if (it != asked.end() && (it->second.count(-1) || it->second.count(a.category_id))) gt.annotations.push_back(a);
  }
  return gt;
}

}  // namespace

EvalResult score_completions(const EvalDataset& d, const std::vector<std::vector<GreedyCompletion>>& completions,
                             const EvalSettings& st) {
  REFRACT_CHECK(completions.size() == d.samples.size())
      << d.name << ": " << completions.size() << " completion lists for " << d.samples.size() << " samples";
  const size_t n = d.samples.size();
  const size_t k = n ? completions[0].size() : static_cast<size_t>(st.num_samples_per_prompt);
  REFRACT_CHECK(n == 0 || k >= 1) << d.name << ": no completions";
  EvalResult r;
  for (size_t i = 0; i < n; ++i) {
    REFRACT_CHECK(completions[i].size() == k) << d.name << ": sample " << i << " has " << completions[i].size()
                                              << " completions, expected " << k;
    nlohmann::json p = {{"id", d.samples[i].id}, {"prediction", completions[i][0].completion}};
    if (k > 1) {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& c : completions[i]) all.push_back(c.completion);
      p["predictions"] = all;
    }
    r.predictions_jsonl += p.dump() + "\n";
    nlohmann::json ref = reference_line(d.samples[i], completions[i][0]);
    if (d.task == "det" && d.samples[i].extra.contains("image_id")) ref["image_id"] = d.samples[i].extra["image_id"];
    r.references_jsonl += ref.dump() + "\n";
  }

  // Each draw j is scored on its own; the summary is the mean over draws.
  std::vector<nlohmann::json> draws;
  nlohmann::json summary = nlohmann::json::object();
  if (d.task == "det") {
    std::vector<int64_t> image_of;
    const metrics::CocoGroundTruth gt = det_truth_for(d, &image_of);
    rewards::DetScoreSettings ds;
    ds.coords = st.coordinate_format;
    ds.default_score = st.det_default_score;
    ds.threads = st.threads;
    for (size_t j = 0; j < k; ++j) {
      std::vector<rewards::DetAnswer> answers;
      for (size_t i = 0; i < n; ++i) {
        rewards::DetAnswer a;
        a.id = d.samples[i].id;
        a.completion = completions[i][j].completion;
        a.image_id = image_of[i];
        if (!completions[i][j].images.empty()) a.image = completions[i][j].images[0];
        a.categories = asked_categories(d.samples[i]);
        answers.push_back(std::move(a));
      }
      rewards::DetScore sc = rewards::score_det_answers(gt, answers, ds);
      if (j == 0) {
        r.detections = rewards::coco_results_json(sc.detections);
        r.ground_truth = rewards::coco_gt_json(gt);
        nlohmann::json det = sc.report;
        det.erase("samples");
        det.erase("stats");
        r.report["detection"] = det;
        r.report["samples"] = sc.report["samples"];
      }
      draws.push_back(sc.report["stats"]);
    }
  } else {
    std::vector<nlohmann::json> refs;
    for (size_t i = 0; i < n; ++i) refs.push_back(reference_line(d.samples[i], completions[i][0]));
    rewards::ScoreSettings ss;
    ss.coords = st.coordinate_format;
    ss.lowercase = st.lowercase;
    std::vector<int64_t> correct(n, 0);
    for (size_t j = 0; j < k; ++j) {
      std::vector<nlohmann::json> preds;
      for (size_t i = 0; i < n; ++i) preds.push_back({{"id", d.samples[i].id}, {"prediction", completions[i][j].completion}});
      nlohmann::json res = rewards::score_predictions(d.task, preds, refs, ss, d.name + " predictions", d.name);
      for (size_t i = 0; i < n; ++i) correct[i] += res["samples"][i].value("correct", false) ? 1 : 0;
      if (j == 0) {
        r.report["samples"] = res["samples"];
        // Nested parts (cls per_class) of the first draw.
        for (const auto& [key, v] : res["summary"].items())
          if (!v.is_number()) summary[key] = v;
      }
      draws.push_back(res["summary"]);
    }
    if (k > 1) {
      double total = 0;
      for (size_t i = 0; i < n; ++i) {
        total += static_cast<double>(correct[i]);
        r.report["samples"][i]["num_correct"] = correct[i];
      }
      summary["mean@" + std::to_string(k)] = n ? total / static_cast<double>(n * k) : 0.0;
      for (int64_t j : pass_ks(static_cast<int64_t>(k))) {
        double sum = 0;
        for (size_t i = 0; i < n; ++i) sum += rewards::pass_at_k(static_cast<int64_t>(k), correct[i], j);
        summary["pass@" + std::to_string(j)] = n ? sum / static_cast<double>(n) : 0.0;
      }
    }
  }
  for (const auto& [key, v] : draws[0].items()) {
    if (!v.is_number()) continue;
    if (key == "n") {
      summary[key] = v;
      continue;
    }
    double sum = 0;
    for (const auto& dr : draws) sum += dr[key].get<double>();
    summary[key] = sum / static_cast<double>(draws.size());
  }
  r.report["task"] = d.task;
  r.report["dataset"] = d.name;
  r.report["files"] = d.files;
  r.report["num_samples"] = n;
  r.report["rejected_samples"] = d.rejected;
  r.report["num_samples_per_prompt"] = k;
  r.report["coordinate_format"] = st.coordinate_format;  // how boxes were read (refract dashboard)
  r.report["summary"] = summary;
  r.metrics = numbers_of(summary);
  return r;
}

EvalResult evaluate(const model::OpenedModel& m, const EvalDataset& d, const EvalSettings& s) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto completions = generate_for_eval(m, d.samples, s);
  EvalResult r = score_completions(d, completions, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.report["seconds"] = seconds;
  return r;
}

void write_eval_files(const std::string& dir, const EvalResult& r) {
  fs::create_directories(dir);
  write_file_atomic(dir + "/predictions.jsonl", r.predictions_jsonl);
  write_file_atomic(dir + "/references.jsonl", r.references_jsonl);
  if (r.report.value("task", "") == "det") {
    write_file_atomic(dir + "/detections.json", r.detections.dump() + "\n");
    write_file_atomic(dir + "/ground_truth.json", r.ground_truth.dump() + "\n");
  }
  write_file_atomic(dir + "/eval.json", r.report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

std::vector<std::string> eval_metric_names(const std::string& task, int64_t k) {
  std::vector<std::string> out;
  if (task == "det") {
    for (const char* n : metrics::coco_stat_names()) out.push_back(n);
    return out;
  }
  // The names the scorer gives its summary (so this list cannot drift from it).
  const nlohmann::json empty = rewards::score_predictions(task, std::vector<nlohmann::json>{},
                                                              std::vector<nlohmann::json>{}, rewards::ScoreSettings{});
  for (const auto& [key, v] : empty["summary"].items())
    if (v.is_number() && key != "n") out.push_back(key);
  if (k > 1) {
    out.push_back("mean@" + std::to_string(k));
    for (int64_t j : pass_ks(k)) out.push_back("pass@" + std::to_string(j));
  }
  return out;
}

bool metric_greater_is_better(const std::string& metric) {
  const std::string m = metric.rfind("eval/", 0) == 0 ? metric.substr(5) : metric;
  if (m == "cer" || m == "mae") return false;
  return !(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0);
}

// ---- the demo's REC evaluator -------------------------------------------------------------

RecEvalResult evaluate_rec(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                           const RecEvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  RecEvalResult res;
  auto iou_fn = rewards::make_reward("iou", {{"coords", opt.coordinate_format}});
  const auto greedy = generate_greedy(m, samples, opt.batch_size, opt.max_new_tokens);
  std::vector<rewards::RewardInput> inputs(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    auto& in = inputs[i];
    in.completion_ids = greedy[i].ids;
    in.completion = greedy[i].completion;
    in.solution = samples[i].solution;
    in.extra = samples[i].extra;
    in.images = greedy[i].images;
    in.prompt = greedy[i].prompt;
  }
  const auto ious = iou_fn(inputs);
  double iou_sum = 0, hits = 0;
  std::string preds;
  for (size_t i = 0; i < ious.size(); ++i) {
    const double v = ious[i].value_or(0.0);
    iou_sum += v;
    hits += v > 0.5 ? 1 : 0;
    if (!opt.predictions_path.empty()) {
      // The image, its sizes and the solution as well, so `refract dashboard` can draw both boxes.
      nlohmann::json line = {{"id", samples[i].id}, {"completion", inputs[i].completion}, {"iou", v},
                             {"solution", samples[i].solution},
                             {"coordinate_format", opt.coordinate_format}};
      if (!inputs[i].images.empty()) add_image_fields(inputs[i].images[0], &line);
      preds += line.dump() + "\n";
    }
  }
  res.num_samples = static_cast<int64_t>(samples.size());
  res.acc50 = res.num_samples ? hits / res.num_samples : 0;
  res.miou = res.num_samples ? iou_sum / res.num_samples : 0;
  if (!opt.predictions_path.empty()) write_file_atomic(opt.predictions_path, preds);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace refract::train
