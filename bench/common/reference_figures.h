// Reference figures the benchmarks compare against (pycocotools, HF tokenizers), read from
// bench/reference_figures.json, which records how, where and when each was measured; only the
// value, its unit and the input it belongs to are needed here.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

namespace refract::bench {

inline const std::string kReferenceFiguresFile = "bench/reference_figures.json";

struct ReferenceFigure {
  double value = 0;
  std::string unit;   // "s", "MB/s"
  std::string input;  // file name of the input it was measured on; a ratio on another input is meaningless
};

// nullopt, with a warning on stderr, when the file or the entry is missing or malformed: the
// benchmark still runs, it just prints no comparison.
inline std::optional<ReferenceFigure> reference_figure(const std::string& key) {
  const std::string path = std::string(REFRACT_SOURCE_DIR) + "/" + kReferenceFiguresFile;
  try {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open the file");
    const auto j = nlohmann::json::parse(in).at(key);
    ReferenceFigure f;
    f.value = j.at("value").get<double>();
    f.unit = j.at("unit").get<std::string>();
    f.input = j.at("input").get<std::string>();
    return f;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: reference figure '%s' unavailable (%s): %s\n", key.c_str(), path.c_str(),
                 e.what());
    return std::nullopt;
  }
}

// Whether `input_path` is the input the figure was measured on (by file name).
inline bool same_input(const ReferenceFigure& f, const std::string& input_path) {
  return std::filesystem::path(input_path).filename() == f.input;
}

}  // namespace refract::bench
