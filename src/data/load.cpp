#include "data/load.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"
#include "common/check.h"
#include "data/formats_internal.h"
#include "data/prompt.h"
#include "data/rng.h"

namespace refract::data {

namespace fs = std::filesystem;

namespace {

struct Record {
  nlohmann::json value;
  int64_t line = 0;
  std::string error;  // bad JSON
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t line_of_offset(const std::string& text, size_t offset) {
  int64_t line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

// The line on which each element of a top-level JSON array starts (nlohmann keeps no
// positions). A small scanner over strings and nesting; assumes the text parsed.
std::vector<int64_t> array_element_lines(const std::string& text) {
  std::vector<int64_t> lines;
  int64_t line = 1;
  int depth = 0;
  bool in_string = false, escape = false, expect_value = false;
  for (char c : text) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (depth == 1 && expect_value && c != ']') {
      lines.push_back(line);
      expect_value = false;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth == 1 && c == '[') expect_value = true;
    } else if (c == ']' || c == '}') --depth;
    else if (c == ',' && depth == 1) expect_value = true;
  }
  return lines;
}

std::string bad_json(const std::exception& e) {
  std::string msg = e.what();
  // nlohmann prefixes "[json.exception.parse_error.101] "; keep the readable part.
  const size_t p = msg.find("] ");
  return "bad JSON: " + (p == std::string::npos ? msg : msg.substr(p + 2));
}

std::vector<Record> read_jsonl(const std::string& path, const std::string& text) {
  std::vector<Record> out;
  std::istringstream in(text);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Record r;
    r.line = n;
    try {
      r.value = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      r.error = bad_json(e);
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<size_t> apply_sampling_strategy(const std::string& strategy, size_t n, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  if (strategy.empty() || strategy == "all") return idx;
  // ref: VLM-R1 grpo_rec.py: "kind:N" or "kind:P%" (ceil(P * len / 100)).
  const size_t colon = strategy.find(':');
  REFRACT_CHECK(colon != std::string::npos)
      << "sampling_strategy '" << strategy << "': expected all | first:N | end:N | random:N | random:P%";
  const std::string kind = strategy.substr(0, colon), num = strategy.substr(colon + 1);
  size_t count = 0;
  try {
    if (!num.empty() && num.back() == '%') {
      const double pct = std::stod(num.substr(0, num.size() - 1));
      REFRACT_CHECK(pct >= 0) << "sampling_strategy '" << strategy << "': negative percentage";
      count = static_cast<size_t>(std::ceil(pct * static_cast<double>(n) / 100.0));
    } else {
      const long long v = std::stoll(num);
      REFRACT_CHECK(v >= 0) << "sampling_strategy '" << strategy << "': negative count";
      count = static_cast<size_t>(v);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    REFRACT_FAIL() << "sampling_strategy '" << strategy << "': '" << num << "' is not a number";
  }
  count = std::min(count, n);
  if (kind == "first") return {idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(count)};
  if (kind == "end") return {idx.end() - static_cast<std::ptrdiff_t>(count), idx.end()};
  if (kind == "random") {
    // VLM-R1 shuffles with Python's unseeded `random`; here data_seed makes it reproducible.
    Rng rng(derive_seed(seed, 0x5A4D504C45ull));
    rng.shuffle(idx);
    idx.resize(count);
    return idx;
  }
  REFRACT_FAIL() << "sampling_strategy '" << strategy << "': unknown kind '" << kind
                 << "' (all | first | end | random)";
}

FileReport load_file(const FileSpec& spec, const LoadOptions& opts, std::vector<Sample>* out) {
  FileReport report;
  report.file = spec.path;
  REFRACT_CHECK(fs::exists(spec.path)) << "data file not found: " << spec.path;
  const std::string text = read_file(spec.path);

  detail::Context ctx;
  ctx.file = spec.path;
  ctx.image_folder = spec.image_folder;
  ctx.reward_method = spec.reward_method;
  ctx.question_template = question_template_text(opts.question_template);
  ctx.coco_prompt_style = opts.coco_prompt_style;

  std::vector<Record> records;
  bool array_file = false;
  if (ends_with(spec.path, ".jsonl")) {
    records = read_jsonl(spec.path, text);
  } else {
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      report.read = 1;
      report.rejected.push_back({spec.path + ":" + std::to_string(line_of_offset(text, e.byte)), bad_json(e)});
      return report;
    }
    if (root.is_object() && root.contains("images") && root.contains("annotations") &&
        root.contains("categories")) {
      const size_t before = out->size();
      detail::convert_coco(root, ctx, out, &report);
      const auto keep = apply_sampling_strategy(spec.sampling_strategy, out->size() - before, opts.data_seed);
      std::vector<Sample> kept;
      for (size_t k : keep) kept.push_back(std::move((*out)[before + k]));
      out->resize(before);
      for (auto& s : kept) out->push_back(std::move(s));
      report.usable = static_cast<int64_t>(kept.size());
      return report;
    }
    if (!root.is_array()) {
      report.read = 1;
      report.rejected.push_back({spec.path + ":1",
                                 "unrecognised JSON layout (expected an array of records or COCO "
                                 "instances with images / annotations / categories)"});
      return report;
    }
    array_file = true;
    const auto lines = array_element_lines(text);
    for (size_t i = 0; i < root.size(); ++i) {
      Record r;
      r.value = std::move(root[i]);
      r.line = i < lines.size() ? lines[i] : 0;
      records.push_back(std::move(r));
    }
  }

  // A file is one layout: the first object decides between VLM-R1 conversations and ms-swift
  // (so a VLM-R1 line missing `conversations` is reported as such).
  bool vlmr1_file = false;
  for (const Record& r : records)
    if (r.error.empty() && r.value.is_object()) {
      vlmr1_file = r.value.contains("conversations");
      break;
    }
  for (size_t k : apply_sampling_strategy(spec.sampling_strategy, records.size(), opts.data_seed)) {
    const Record& r = records[k];
    ++report.read;
    const std::string where = spec.path + ":" + std::to_string(r.line);
    if (!r.error.empty()) {
      report.rejected.push_back({where, r.error});
      continue;
    }
    Sample s;
    std::string reason;
    const auto& v = r.value;
    if (vlmr1_file || (v.is_object() && v.contains("conversations"))) reason = detail::convert_vlmr1(v, ctx, s);
    else if (array_file && !(v.is_object() && v.contains("messages"))) reason = detail::convert_rec_json(v, ctx, s);
    else reason = detail::convert_swift(v, ctx, s);
    if (!reason.empty()) {
      report.rejected.push_back({where, reason});
      continue;
    }
    s.source = where;
    if (s.id.empty()) s.id = where;
    out->push_back(std::move(s));
    ++report.usable;
  }
  return report;
}

std::vector<FileSpec> read_data_config(const std::string& yaml_path, const std::string& image_root) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml_path);
  } catch (const YAML::Exception& e) {
    REFRACT_FAIL() << yaml_path << ": invalid YAML: " << e.what();
  }
  REFRACT_CHECK(root.IsMap() && root["datasets"] && root["datasets"].IsSequence())
      << yaml_path << ": expected `datasets:` with a list of `- json_path: ...` entries";
  std::vector<FileSpec> specs;
  const fs::path dir = fs::path(yaml_path).parent_path();
  for (const auto& d : root["datasets"]) {
    const int line = d.Mark().line + 1;
    REFRACT_CHECK(d.IsMap() && d["json_path"])
        << yaml_path << ":" << line << ": a dataset entry needs `json_path`";
    FileSpec s;
    s.path = d["json_path"].as<std::string>();
    if (!fs::exists(s.path) && fs::path(s.path).is_relative() && fs::exists(dir / s.path))
      s.path = (dir / s.path).string();
    if (d["sampling_strategy"]) s.sampling_strategy = d["sampling_strategy"].as<std::string>();
    s.image_folder = image_root;
    for (const char* k : {"image_folder", "image_root"})
      if (d[k]) s.image_folder = d[k].as<std::string>();
    if (d["reward_method"]) s.reward_method = d["reward_method"].as<std::string>();
    // Validate the strategy now so that a typo fails before any loading.
    apply_sampling_strategy(s.sampling_strategy, 0, 0);
    specs.push_back(std::move(s));
  }
  return specs;
}

std::vector<FileSpec> file_specs(const DataConfig& cfg) {
  const auto files = split_paths(cfg.data_file_paths);
  const auto folders = split_paths(cfg.image_folders);
  const auto methods = split_paths(cfg.reward_method);
  // ref: VLM-R1 grpo_jsonl.py asserts equal counts of files, folders and methods.
  REFRACT_CHECK(folders.empty() || folders.size() == files.size())
      << "image_folders has " << folders.size() << " entries but data_file_paths has "
      << files.size() << " (':'-separated lists must have equal counts)";
  REFRACT_CHECK(methods.empty() || methods.size() == files.size())
      << "reward_method has " << methods.size() << " entries but data_file_paths has "
      << files.size() << " (':'-separated lists must have equal counts)";
  std::vector<FileSpec> specs;
  for (size_t i = 0; i < files.size(); ++i) {
    if (ends_with(files[i], ".yaml") || ends_with(files[i], ".yml")) {
      for (auto& s : read_data_config(files[i], cfg.image_root)) specs.push_back(std::move(s));
      continue;
    }
    FileSpec s;
    s.path = files[i];
    s.image_folder = !folders.empty() ? folders[i]
                     : !cfg.image_root.empty() ? cfg.image_root
                                               : fs::path(files[i]).parent_path().string();
    if (!methods.empty()) s.reward_method = methods[i];
    specs.push_back(std::move(s));
  }
  if (!cfg.dataset_name.empty())
    for (auto& s : read_data_config(cfg.dataset_name, cfg.image_root)) specs.push_back(std::move(s));
  REFRACT_CHECK(!specs.empty()) << "no data: set data_file_paths or dataset_name";
  for (const auto& s : specs) REFRACT_CHECK(fs::exists(s.path)) << "data file not found: " << s.path;
  return specs;
}

Dataset load_dataset(const DataConfig& cfg) {
  LoadOptions opts;
  opts.question_template = cfg.question_template;
  opts.coco_prompt_style = cfg.coco_prompt_style;
  opts.data_seed = effective_data_seed(cfg);
  Dataset d;
  for (const auto& spec : file_specs(cfg)) d.reports.push_back(load_file(spec, opts, &d.samples));
  return d;
}

std::string format_report(const Dataset& d) {
  std::ostringstream os;
  int64_t read = 0, usable = 0, rejected = 0, dropped = 0;
  for (const auto& r : d.reports) {
    os << r.file << ": read " << r.read << ", usable " << r.usable << ", rejected "
       << r.rejected.size();
    if (!r.dropped.empty()) os << ", dropped " << r.dropped.size();
    os << "\n";
    for (const auto& x : r.rejected) os << "  " << x.where << ": " << x.reason << "\n";
    for (const auto& x : r.dropped) os << "  " << x.where << ": dropped: " << x.reason << "\n";
    read += r.read, usable += r.usable, rejected += static_cast<int64_t>(r.rejected.size());
    dropped += static_cast<int64_t>(r.dropped.size());
  }
  os << "total: read " << read << ", usable " << usable << ", rejected " << rejected;
  if (dropped > 0) os << ", dropped " << dropped;
  os << "\n";
  return os.str();
}

}  // namespace refract::data
