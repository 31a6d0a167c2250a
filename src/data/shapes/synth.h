// `refract data synth`: the shapes world written as VLM-R1 JSONL (+ COCO JSON for det).
//
// Defaults (the demo preset): grid on (shapes snapped to 28-px cells, the Qwen2.5-VL merge
// unit, so a box edge is a token edge), images 112..224 px per side (multiples of 28, so
// smart_resize leaves them unchanged and predicted pixels are original pixels), 2-4 objects.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shapes/scene.h"

namespace refract {
class Options;
}

namespace refract::data::shapes {

struct SynthConfig {
  std::string task = "rec";         // rec | det | count | ocr | cls
  std::string split = "in_domain";  // in_domain | ood_combo | ood_crowded | ood_size | relational
  int64_t num_samples = 1000;
  int64_t seed = 0;
  std::string output;               // directory
  bool grid = true;                 // snap shapes to cell_size cells
  int64_t cell_size = 28;
  int64_t min_image_size = 112;     // per side, in-domain
  int64_t max_image_size = 224;
  int64_t min_objects = 2;          // in-domain objects per image (rec, det)
  int64_t max_objects = 4;
  int64_t crowded_min_objects = 6;  // ood_crowded
  int64_t crowded_max_objects = 9;
  int64_t ood_min_image_size = 252;  // ood_size
  int64_t ood_max_image_size = 336;
  double noise = 0.03;              // background speckle density
  // rec annotation noise: each edge of the written box (answer and solution) moves by a
  // uniform integer in [-box_noise, box_noise] px, as hand-drawn boxes do; the drawn pixels do
  // not move. 0 = exact boxes.
  int64_t box_noise = 0;
  int64_t num_workers = 2;          // threads rendering samples
};
void declare(Options& o, SynthConfig& c);

// One generated sample, before it is written.
struct SynthSample {
  vision::Image image;
  std::vector<Object> objects;  // every drawn object (target first for rec)
  std::string question;         // human turn without the <image> placeholder
  std::string answer;           // gpt turn, e.g. <answer>{"bbox_2d": [...], ...}</answer>
  nlohmann::json solution;      // what the loaders put in Sample::solution
  nlohmann::json extra = nlohmann::json::object();  // extra JSONL columns
};

// Deterministic in (cfg.seed, task, split, index); independent of num_workers.
SynthSample make_sample(const SynthConfig& cfg, int64_t index);

struct SynthResult {
  std::string jsonl_path;       // <output>/<task>_<split>.jsonl
  std::string coco_path;        // <output>/<task>_<split>_coco.json (det only)
  std::string image_dir;        // <output>/images/<task>_<split>/
  int64_t num_samples = 0;
  double seconds = 0;
};

// Renders all samples (parallel by index) and writes the files.
SynthResult synthesize(const SynthConfig& cfg);

}  // namespace refract::data::shapes
