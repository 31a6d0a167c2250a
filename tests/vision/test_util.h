// Shared helpers of the vision tests: fixture paths and JSON loading.
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace refract::testing {

inline std::string fixture(const std::string& rel) {
  return std::string(REFRACT_FIXTURES_DIR) + "/image_preprocess/" + rel;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json load_json(const std::string& rel) {
  return nlohmann::json::parse(slurp(fixture(rel)));
}

}  // namespace refract::testing
