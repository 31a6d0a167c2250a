// The tiny training world the trainer tests share: 24 shapes-world REC samples, a small BPE
// tokenizer and a random tiny model, built once per test process.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands/model.h"
#include "data/load.h"
#include "data/shapes/synth.h"
#include "temp_dir.h"
#include "text/bpe_trainer.h"
#include "test_device.h"
#include "train/run.h"

namespace refract::testing {
namespace fs = std::filesystem;

struct World {
  std::string root, model, jsonl, images;
};

// Built once: 24 shapes-world REC samples, a small BPE tokenizer, a random tiny model; its
// directory is removed at process exit.
inline const World& world() {
  static const TempDir dir("train_resume");
  static World w = [] {
    World w;
    w.root = dir.path();
    data::shapes::SynthConfig sc;
    sc.num_samples = 24;
    sc.seed = 7;
    sc.output = w.root + "/data";
    sc.num_workers = 1;
    auto r = data::shapes::synthesize(sc);
    w.jsonl = r.jsonl_path;
    w.images = w.root + "/data";
    data::DataConfig dc;
    dc.data_file_paths = w.jsonl;
    dc.image_folders = w.images;
    dc.question_template = "none";
    std::vector<std::string> corpus;
    for (const auto& s : data::load_dataset(dc).samples) {
      corpus.push_back(s.response);
      for (const auto& m : s.prompt)
        for (const auto& it : m.content) corpus.push_back(it.text);
    }
    text::build_byte_level_bpe_tokenizer(corpus, 340, w.root + "/tok");
    commands::ModelInitSettings mi;
    mi.preset = "tiny";
    mi.tokenizer = w.root + "/tok";
    mi.output = w.root + "/model";
    mi.seed = 3;
    mi.threads = 1;
    commands::run_model_init(mi);
    w.model = mi.output;
    return w;
  }();
  return w;
}

template <typename Cfg>
inline void base(Cfg& c, const std::string& out) {
  const World& w = world();
  c.model_name_or_path = w.model;
  c.data.data_file_paths = w.jsonl;
  c.data.image_folders = w.images;
  c.data.question_template = "none";
  c.output_dir = out;
  c.device = test_device_name();
  c.threads = 1;
  c.logging_steps = 1;
  c.save_steps = 2;
  c.lr_scheduler_type = "constant";
  c.learning_rate = 1e-3;
  c.report_to = {"none"};
  c.seed = 5;
}

// log_history without wall-clock metrics.
inline nlohmann::json comparable(nlohmann::json h) {
  for (auto& e : h) {
    nlohmann::json keep = nlohmann::json::object();
    for (auto& [k, v] : e.items())
      if (k != "step_time" && k != "wall_time" && k.rfind("time/", 0) != 0) keep[k] = v;
    e = keep;
  }
  return h;
}

}  // namespace refract::testing
