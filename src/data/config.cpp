#include "data/config.h"

#include <sstream>

#include "common/options.h"

namespace refract::data {

namespace {
template <typename T>
void add_once(Options& o, const std::string& key, T* field, const std::string& help,
              std::vector<std::string> choices = {}) {
  if (o.has(key)) return;
  o.add(key, field, help);
  if (!choices.empty()) o.choices(std::move(choices));
}
}  // namespace

void declare(Options& o, DataConfig& c) {
  add_once(o, "data_file_paths", &c.data_file_paths,
           "data files, ':'-separated: VLM-R1 JSONL, ms-swift JSONL, VLM-R1 REC JSON, COCO "
           "instances JSON");
  add_once(o, "image_folders", &c.image_folders,
           "image folder per data file, ':'-separated (default: image_root, else the file's folder)");
  add_once(o, "reward_method", &c.reward_method,
           "accuracy reward method per data file, ':'-separated (accu_reward_method overrides)");
  add_once(o, "dataset_name", &c.dataset_name,
           "VLM-R1 data-config YAML (datasets: - json_path, sampling_strategy)");
  add_once(o, "image_root", &c.image_root, "image root for REC JSON / data-config datasets");
  add_once(o, "question_template", &c.question_template,
           "prompt template around the question: rec (VLM-R1 REC, word for word), default, none, or "
           "a text with {Question} (a recipe's own prompt, e.g. configs/visual_rft_detection.yaml)");
  add_once(o, "coco_prompt_style", &c.coco_prompt_style,
           "COCO detection prompts: pr1 = one per image listing all categories, visual_rft = one "
           "per (image, category)",
           {"pr1", "visual_rft"});
  add_once(o, "max_prompt_length", &c.max_prompt_length,
           "longest prompt in tokens, image tokens included (0 = unchecked)");
  add_once(o, "tokenizer_path", &c.tokenizer_path,
           "tokenizer.json (or its folder) used to measure prompt lengths");
  add_once(o, "min_pixels", &c.min_pixels, "smart_resize min_pixels");
  add_once(o, "max_pixels", &c.max_pixels, "smart_resize max_pixels");
  add_once(o, "on_bad_sample", &c.on_bad_sample,
           "a rejected sample is an error, or is skipped (and reported)", {"error", "skip"});
  add_once(o, "check_images", &c.check_images, "decode every image while validating");
  add_once(o, "seed", &c.seed, "random seed");
  add_once(o, "data_seed", &c.data_seed, "seed for data shuffling and sampling (-1 = seed)");
  add_once(o, "num_workers", &c.num_workers, "threads decoding and preprocessing images");
}

std::vector<std::string> split_paths(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ':'))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace refract::data
