// Loading every supported data file into Samples (no image decoding here; see validate.h).
//
// Formats, detected per file (and per record):
//   *.jsonl  one object per line: VLM-R1 conversations ({"image", "conversations"}) or
//            ms-swift ({"messages", "images"} / query-response aliases).
//   *.json   an array: VLM-R1 REC records ({"image", "problem", "solution", ...}) or
//            conversation records as above; an object with images / annotations / categories:
//            COCO instances (detection prompts, see coco_prompt_style).
//   *.yaml   a VLM-R1 data-config (`datasets: - json_path: ...  sampling_strategy: ...`).
#pragma once
#include <string>
#include <vector>

#include "data/config.h"
#include "data/report.h"

namespace refract::data {

// One data file and how to read it.
struct FileSpec {
  std::string path;
  std::string image_folder;              // joined to relative image paths
  std::string reward_method;             // the file's accu_reward_method default
  std::string sampling_strategy = "all";  // all | first:N | end:N | random:N | random:P%
};

struct LoadOptions {
  std::string question_template = "default";  // rec | default | none
  std::string coco_prompt_style = "pr1";      // pr1 | visual_rft
  uint64_t data_seed = 42;                    // random:N sampling
};

// Reads one file; malformed records become rejections in the returned report.
// Throws refract::Error when the file itself cannot be read.
FileReport load_file(const FileSpec& spec, const LoadOptions& opts, std::vector<Sample>* out);

// The files named by a DataConfig (data_file_paths with image_folders / reward_method, and/or
// the dataset_name YAML). Throws on configuration errors (unequal ':'-list counts, missing
// files). Samples are not validated yet: call validate_dataset (validate.h).
std::vector<FileSpec> file_specs(const DataConfig& cfg);
Dataset load_dataset(const DataConfig& cfg);

// Entries of a VLM-R1 data-config YAML (json_path relative to the YAML's folder if not found
// as given).
std::vector<FileSpec> read_data_config(const std::string& yaml_path, const std::string& image_root);

// Applies a sampling strategy to `n` records: the indices kept, in order.
std::vector<size_t> apply_sampling_strategy(const std::string& strategy, size_t n, uint64_t seed);

}  // namespace refract::data
