// Record converters shared by load.cpp (internal to src/data).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "data/load.h"

namespace refract::data::detail {

struct Context {
  std::string file;            // as given, used in "<file>:<line>"
  std::string image_folder;    // resolved folder for relative image paths
  std::string reward_method;   // the file's default method
  std::string question_template;  // template text with {Question}
  std::string coco_prompt_style;
};

// Each returns "" and fills `s`, or the reason the record is unusable.
std::string convert_vlmr1(const nlohmann::json& j, const Context& ctx, Sample& s);
std::string convert_swift(const nlohmann::json& j, const Context& ctx, Sample& s);
std::string convert_rec_json(const nlohmann::json& j, const Context& ctx, Sample& s);
// COCO instances: one or more prompts; rejections go to the report.
void convert_coco(const nlohmann::json& j, const Context& ctx, std::vector<Sample>* out,
                  FileReport* report);

// folder + relative path; absolute paths and data: URLs are kept.
std::string resolve_image(const std::string& folder, const std::string& path);
// Record id as a string ("" if absent).
std::string id_string(const nlohmann::json& j);

}  // namespace refract::data::detail
