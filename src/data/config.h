// DataConfig: the data settings shared by the trainers and `refract data check`.
// Key names follow VLM-R1 (data_file_paths, image_folders, reward_method, image_root,
// dataset_name, question_template) and HF / TRL (max_prompt_length, seed, data_seed).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract {
class Options;
}

namespace refract::data {

struct DataConfig {
  // VLM-R1 JSONL / ms-swift JSONL / REC JSON / COCO files, ':'-separated (VLM-R1 style).
  std::string data_file_paths;
  // One image folder per data file, ':'-separated; empty = image_root, else the file's folder.
  std::string image_folders;
  // One accuracy reward method per data file, ':'-separated (a line's accu_reward_method wins).
  std::string reward_method;
  // A VLM-R1 data-config YAML (`datasets: - json_path: ...  sampling_strategy: ...`).
  std::string dataset_name;
  // Image root for REC JSON / data-config datasets (VLM-R1 --image_root).
  std::string image_root;
  std::string question_template = "default";  // rec | default | none | text with {Question} (prompt.h)
  std::string coco_prompt_style = "pr1";      // pr1 (one prompt per image) | visual_rft
  int64_t max_prompt_length = 1024;           // tokens incl. image pads; 0 = unchecked
  std::string tokenizer_path;                 // tokenizer.json (or its folder) for lengths
  int64_t min_pixels = 3136;                  // smart_resize bounds (Qwen2.5-VL defaults)
  int64_t max_pixels = 12845056;
  std::string on_bad_sample = "error";        // error | skip
  bool check_images = true;                   // decode every image during validation
  int64_t seed = 42;
  int64_t data_seed = -1;                     // -1 = seed (HF TrainingArguments.data_seed)
  int64_t num_workers = 2;                    // threads decoding / preprocessing images
};

// Declares every key not already declared in `o`. Keys a trainer declares itself (seed,
// max_prompt_length, ...) are skipped: copy their values into DataConfig after parsing.
void declare(Options& o, DataConfig& c);

// ':'-separated list (empty items dropped).
std::vector<std::string> split_paths(const std::string& s);

// data_seed, or seed when data_seed < 0.
inline uint64_t effective_data_seed(const DataConfig& c) {
  return static_cast<uint64_t>(c.data_seed >= 0 ? c.data_seed : c.seed);
}

}  // namespace refract::data
