#include "vision/preprocessor_config.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"

namespace refract::vision {

PreprocessConfig load_preprocessor_config(const std::string& model_dir) {
  PreprocessConfig cfg;
  const std::string path = (std::filesystem::path(model_dir) / "preprocessor_config.json").string();
  if (!std::filesystem::exists(path)) return cfg;
  const nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  REFRACT_CHECK(j.is_object()) << path << ": not a JSON object";
  auto read = [&](const char* key, int64_t& field) {
    if (j.contains(key) && j[key].is_number_integer()) field = j[key].get<int64_t>();
  };
  // ref: transformers >= 4.49 also stores them as size.shortest_edge / size.longest_edge.
  if (j.contains("size") && j["size"].is_object()) {
    const auto& size = j["size"];
    if (size.contains("shortest_edge") && size["shortest_edge"].is_number_integer())
      cfg.min_pixels = size["shortest_edge"].get<int64_t>();
    if (size.contains("longest_edge") && size["longest_edge"].is_number_integer())
      cfg.max_pixels = size["longest_edge"].get<int64_t>();
  }
  // Explicit min_pixels / max_pixels win (Qwen2VLImageProcessor.__init__ overrides size with them).
  read("min_pixels", cfg.min_pixels);
  read("max_pixels", cfg.max_pixels);
  read("patch_size", cfg.patch_size);
  read("merge_size", cfg.merge_size);
  read("temporal_patch_size", cfg.temporal_patch_size);
  return cfg;
}

}  // namespace refract::vision
