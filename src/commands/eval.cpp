#include "commands/eval.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "model/open_model.h"
#include "train/evaluate.h"

namespace fs = std::filesystem;

namespace refract::commands {

void declare(Options& o, EvalConfig& c) {
  model::declare(o, static_cast<model::ModelSettings&>(c));
  o.add("task", &c.task, "metrics to compute; auto = the samples' task")
      .choices({"auto", "rec", "det", "count", "ocr", "cls"});
  o.add("per_device_eval_batch_size", &c.per_device_eval_batch_size,
        "prompts decoded together (x num_samples_per_prompt rows); sampled draws are seeded per batch of this many");
  o.add("max_new_tokens", &c.max_new_tokens, "generation length cap");
  o.add("coordinate_format", &c.coordinate_format, "rec / det: how predicted boxes are expressed")
      .choices({"absolute_resized", "normalized_1000", "absolute"});
  o.add("lowercase", &c.lowercase, "ocr: compare case-insensitively");
  o.add("max_samples", &c.max_samples, "evaluate only the first N samples of each dataset (0 = all)");
  o.add("num_samples_per_prompt", &c.num_samples_per_prompt,
        "k completions per prompt (1 = greedy; > 1 = sampled: mean@k of every metric and pass@j)");
  o.add("temperature", &c.temperature, "sampling temperature (num_samples_per_prompt > 1)");
  o.add("top_p", &c.top_p, "nucleus sampling (1 = off; num_samples_per_prompt > 1)");
  o.add("top_k", &c.top_k, "top-k sampling (0 = off; num_samples_per_prompt > 1)");
  o.add("seed", &c.seed, "sampling seed; also the data seed of random:N sampling strategies");
  o.add("det_default_score", &c.det_default_score,
        "det: score of a box whose answer states no confidence (ties keep the answer's order)");
  o.add("compare", &c.compare, "another run's eval.json: print this run minus that one per dataset and metric");
  o.add("output_dir", &c.output_dir, "where eval.json, eval.md and the predictions go");
  declare(o, c.data);
}

namespace {

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

nlohmann::json settings_json(const EvalConfig& c) {
  return {{"task", c.task},
          {"per_device_eval_batch_size", c.per_device_eval_batch_size},
          {"max_new_tokens", c.max_new_tokens},
          {"coordinate_format", c.coordinate_format},
          {"lowercase", c.lowercase},
          {"max_samples", c.max_samples},
          {"num_samples_per_prompt", c.num_samples_per_prompt},
          {"temperature", c.temperature},
          {"top_p", c.top_p},
          {"top_k", c.top_k},
          {"seed", c.seed},
          {"det_default_score", c.det_default_score},
          {"data_file_paths", c.data.data_file_paths},
          {"image_folders", c.data.image_folders},
          {"dataset_name", c.data.dataset_name},
          {"question_template", c.data.question_template},
          {"coco_prompt_style", c.data.coco_prompt_style},
          {"torch_dtype", c.torch_dtype},
          {"device", c.device}};
}

// The datasets of an eval.json: this format's "datasets", or an older single-dataset file's
// top-level "summary".
nlohmann::json datasets_of(const nlohmann::json& e, const std::string& where) {
  if (e.contains("datasets") && e["datasets"].is_array()) return e["datasets"];
  REFRACT_CHECK(e.contains("summary") && e["summary"].is_object())
      << where << ": not an eval.json (no \"datasets\" list and no \"summary\")";
  return nlohmann::json::array({{{"name", e.value("dataset", std::string("eval"))},
                                 {"task", e.value("task", std::string())},
                                 {"summary", e["summary"]}}});
}

}  // namespace

std::string eval_table_markdown(const nlohmann::json& result) {
  // Columns: every numeric summary key; the papers' headline metrics first (VLM-R1 Acc@0.5 as
  // "accuracy", COCO AP, OCR edit distance), then the rest in name order.
  static const std::vector<std::string> kHeadline = {"accuracy", "AP", "AP50", "AP75", "mean_iou", "cer",
                                                     "edit_similarity", "mae", "mean@", "pass@1"};
  std::vector<std::string> cols;
  for (const auto& d : result["datasets"])
    for (const auto& [k, v] : d["summary"].items())
      if (v.is_number() && k != "n" && std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  auto rank = [](const std::string& k) {
    for (size_t i = 0; i < kHeadline.size(); ++i)
      if (k == kHeadline[i] || (kHeadline[i].back() == '@' && k.rfind(kHeadline[i], 0) == 0)) return i;
    return kHeadline.size();
  };
  std::stable_sort(cols.begin(), cols.end(), [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  std::string md = "| dataset | task | samples |";
  std::string rule = "|---|---|---|";
  for (const auto& c : cols) md += " " + c + " |", rule += "---|";
  md += "\n" + rule + "\n";
  for (const auto& d : result["datasets"]) {
    md += "| " + d["name"].get<std::string>() + " | " + d["task"].get<std::string>() + " | " +
          std::to_string(d.value("num_samples", int64_t{0})) + " |";
    for (const auto& c : cols) {
      const auto& s = d["summary"];
      md += " " + (s.contains(c) && s[c].is_number() ? format_value(s[c].get<double>()) : std::string("-")) + " |";
    }
    md += "\n";
  }
  return md;
}

nlohmann::json compare_evals(const nlohmann::json& here, const nlohmann::json& other) {
  const nlohmann::json a = datasets_of(here, "this run"), b = datasets_of(other, "compare");
  nlohmann::json rows = nlohmann::json::array(), only_here = nlohmann::json::array(),
                 only_there = nlohmann::json::array();
  auto find = [](const nlohmann::json& list, const std::string& name) -> const nlohmann::json* {
    for (const auto& d : list)
      if (d.value("name", std::string()) == name) return &d;
    return nullptr;
  };
  for (const auto& d : a) {
    const std::string name = d["name"];
    const nlohmann::json* o = find(b, name);
    if (!o) {
      only_here.push_back(name);
      continue;
    }
    for (const auto& [k, v] : d["summary"].items()) {
      if (!v.is_number() || k == "n") continue;
      const auto& os = (*o)["summary"];
      if (!os.contains(k) || !os[k].is_number()) continue;
      const double x = v.get<double>(), y = os[k].get<double>();
      rows.push_back({{"dataset", name}, {"metric", k}, {"this", x}, {"other", y}, {"diff", x - y}});
    }
  }
  for (const auto& d : b)
    if (!find(a, d["name"].get<std::string>())) only_there.push_back(d["name"]);
  return {{"rows", rows}, {"only_here", only_here}, {"only_there", only_there}};
}

std::string compare_markdown(const nlohmann::json& cmp, const std::string& other_name) {
  std::string md = "Compared with " + other_name + " (diff = this - other):\n\n";
  md += "| dataset | metric | this | other | diff |\n|---|---|---|---|---|\n";
  for (const auto& r : cmp["rows"]) {
    char diff[32];
    std::snprintf(diff, sizeof diff, "%+.4f", r["diff"].get<double>());
    md += "| " + r["dataset"].get<std::string>() + " | " + r["metric"].get<std::string>() + " | " +
          format_value(r["this"].get<double>()) + " | " + format_value(r["other"].get<double>()) + " | " + diff +
          " |\n";
  }
  for (const auto& n : cmp["only_here"]) md += "\nonly in this run: " + n.get<std::string>();
  for (const auto& n : cmp["only_there"]) md += "\nonly in " + other_name + ": " + n.get<std::string>();
  if (!cmp["only_here"].empty() || !cmp["only_there"].empty()) md += "\n";
  return md;
}

nlohmann::json run_eval(const EvalConfig& c) {
  const auto t0 = std::chrono::steady_clock::now();
  REFRACT_CHECK(c.per_device_eval_batch_size >= 1)
      << "per_device_eval_batch_size must be >= 1, got " << c.per_device_eval_batch_size;
  REFRACT_CHECK(c.num_samples_per_prompt >= 1)
      << "num_samples_per_prompt must be >= 1, got " << c.num_samples_per_prompt;
  REFRACT_CHECK(c.temperature > 0) << "temperature must be > 0, got " << c.temperature;
  nlohmann::json other;
  if (!c.compare.empty()) {  // read first: a typo should not cost an evaluation
    try {
      other = nlohmann::json::parse(read_file(c.compare));
    } catch (const nlohmann::json::exception& e) {
      REFRACT_FAIL() << c.compare << ": invalid JSON: " << e.what();
    }
    datasets_of(other, c.compare);
  }
  model::OpenedModel m = model::open_model(c);
  data::DataConfig dc = c.data;
  dc.seed = c.seed;
  const auto datasets = train::load_eval_datasets(dc, m, c.task, c.max_samples, /*separate=*/true);

  train::EvalSettings st;
  st.batch_size = c.per_device_eval_batch_size;
  st.max_new_tokens = c.max_new_tokens;
  st.num_samples_per_prompt = c.num_samples_per_prompt;
  st.temperature = c.temperature;
  st.top_p = c.top_p;
  st.top_k = c.top_k;
  st.seed = c.seed;
  st.coordinate_format = c.coordinate_format;
  st.lowercase = c.lowercase;
  st.det_default_score = c.det_default_score;
  st.threads = static_cast<int>(std::max<int64_t>(1, c.threads));

  nlohmann::json result = {{"model", c.model_name_or_path},
                           {"adapter", c.adapter.empty() ? nlohmann::json() : nlohmann::json(c.adapter)},
                           {"settings", settings_json(c)}};
  nlohmann::json rows = nlohmann::json::array(), table = nlohmann::json::object();
  const bool several = datasets.size() > 1;
  for (const auto& d : datasets) {
    LOG_INFO("evaluating {}: {} samples ({})", d.name, d.samples.size(), d.task);
    const train::EvalResult r = train::evaluate(m, d, st);
    train::write_eval_files(several ? c.output_dir + "/" + d.name : c.output_dir, r);
    rows.push_back({{"name", d.name},
                    {"task", d.task},
                    {"files", d.files},
                    {"num_samples", d.samples.size()},
                    {"rejected_samples", d.rejected},
                    {"seconds", r.report["seconds"]},
                    {"summary", r.report["summary"]}});
    if (r.report.contains("detection")) rows.back()["detection"] = r.report["detection"];
    table[d.name] = r.metrics;
    if (!several)  // one dataset: its full report at the top level, as before tables existed
      for (const auto& [k, v] : r.report.items()) result[k] = v;
  }
  result["datasets"] = rows;
  result["table"] = table;
  result["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string md = "# refract eval\n\nmodel: " + c.model_name_or_path +
                   (c.adapter.empty() ? "" : "\nadapter: " + c.adapter) + "\n\n" + eval_table_markdown(result);
  if (!c.compare.empty()) {
    result["compare"] = compare_evals(result, other);
    result["compare"]["file"] = c.compare;
    md += "\n" + compare_markdown(result["compare"], c.compare);
  }
  fs::create_directories(c.output_dir);
  write_file_atomic(c.output_dir + "/eval.md", md);
  write_file_atomic(c.output_dir + "/eval.json",
                    result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return result;
}

}  // namespace refract::commands
