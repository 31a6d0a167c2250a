// The recipe configs of the systems refract replaces (configs/visual_rft_*.yaml,
// configs/perception_r1_*.yaml) run GRPO for a step on `refract data synth` data with a tiny
// Qwen2-VL (`model init --model_type qwen2_vl`): the config parses, its rewards are the ones
// trained with, and its prompt reaches the model word for word (completions.jsonl).
// Only the scale is overridden (steps, G, lengths, dtype, threads), never a recipe setting.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands/model.h"
#include "common/atomic_file.h"
#include "data/load.h"
#include "data/shapes/synth.h"
#include "temp_dir.h"
#include "text/bpe_trainer.h"
#include "test_device.h"

namespace refract {
namespace {
namespace fs = std::filesystem;

struct RecipeWorld {
  std::string root, model;
  std::map<std::string, std::string> jsonl;  // task -> data file
  std::string images;
};

const RecipeWorld& recipe_world() {
  static const testing::TempDir dir("recipes");  // removed at process exit
  static RecipeWorld w = [] {
    RecipeWorld w;
    w.root = dir.path();
    w.images = w.root + "/data";
    std::vector<std::string> corpus;
    for (const char* task : {"det", "cls", "rec", "count"}) {
      data::shapes::SynthConfig sc;
      sc.task = task;
      sc.num_samples = 4;
      sc.seed = 11;
      sc.output = w.images;
      sc.num_workers = 1;
      w.jsonl[task] = data::shapes::synthesize(sc).jsonl_path;
      data::DataConfig dc;
      dc.data_file_paths = w.jsonl[task];
      dc.image_folders = w.images;
      dc.question_template = "none";
      for (const auto& s : data::load_dataset(dc).samples) {
        corpus.push_back(s.response);
        for (const auto& m : s.prompt)
          for (const auto& it : m.content) corpus.push_back(it.text);
      }
    }
    text::build_byte_level_bpe_tokenizer(corpus, 340, w.root + "/tok");
    commands::ModelInitSettings mi;
    mi.preset = "tiny";
    mi.model_type = "qwen2_vl";
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

struct Recipe {
  const char* config;
  const char* task;                         // synth data it runs on
  std::vector<std::string> rewards;         // the config's reward_funcs
  std::vector<std::string> prompt_pieces;   // text of the recipe's template, word for word
};

class Recipes : public ::testing::TestWithParam<Recipe> {};

TEST_P(Recipes, RunsAStepWithItsRewardsAndPrompt) {
  const Recipe& r = GetParam();
  const RecipeWorld& w = recipe_world();
  const std::string out = w.root + "/" + fs::path(r.config).stem().string();
  const std::string cmd = std::string(REFRACT_BINARY) + " grpo --config " + REFRACT_SOURCE_DIR + "/configs/" +
                          r.config + " --model_name_or_path " + w.model + " --dataset_name '' --image_root ''" +
                          " --data_file_paths " + w.jsonl.at(r.task) + " --image_folders " + w.images +
                          " --max_steps 1 --num_generations 2 --per_device_train_batch_size 2" + refract::testing::device_flag() +
                          " --gradient_accumulation_steps 1 --max_completion_length 8 --torch_dtype float32" +
                          " --report_to none --threads 1 --log_completions --output_dir " + out + " > " + out +
                          ".log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(out + ".log");
  const auto state = nlohmann::json::parse(read_file(out + "/checkpoint-1/trainer_state.json"));
  const auto& log = state["log_history"][0];
  for (const auto& name : r.rewards) EXPECT_TRUE(log.contains("rewards/" + name + "/mean")) << name << " " << log.dump();
  std::ifstream in(out + "/completions.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << "no completions.jsonl";
  const std::string prompt = nlohmann::json::parse(line)["prompt"].get<std::string>();
  for (const auto& piece : r.prompt_pieces) EXPECT_NE(prompt.find(piece), std::string::npos) << piece << "\n" << prompt;
  EXPECT_EQ(prompt.find("{Question}"), std::string::npos) << prompt;
  // The tiny model is a Qwen2-VL: the run trained the family the recipes are for.
  EXPECT_EQ(nlohmann::json::parse(read_file(w.model + "/config.json"))["model_type"], "qwen2_vl");
}

INSTANTIATE_TEST_SUITE_P(
    Configs, Recipes,
    ::testing::Values(
        Recipe{"visual_rft_detection.yaml", "det", {"det_iou", "det_confidence", "format"},
               {"Detect all objects belonging to the category '",
                "' in the image, and provide the bounding boxes (between 0 and 1000, integer) and confidence "
                "(between 0 and 1, with two decimal places).\nIf no object belonging to the category '",
                "' in the image, return 'No Objects'.\nOutput the thinking process in <think> </think> and final "
                "answer in <answer> </answer> tags.The output answer format should be as follows:\n<think> ... "
                "</think> <answer>[{'Position': [x1, y1, x2, y2], 'Confidence': number}, ...]</answer>\nPlease "
                "strictly follow the format."}},
        Recipe{"visual_rft_classification.yaml", "cls", {"cls", "format"},
               {"\nOutput the thinking process in <think> </think> and final answer in <answer> </answer> tags.The "
                "output answer format should be as follows:\n<think> ... </think> <answer>species name</answer>\n"
                "Please strictly follow the format."}},
        Recipe{"perception_r1_grounding.yaml", "rec", {"iou_squared", "format"},
               {"Output the bounding box of the ", " in the image."}},
        Recipe{"perception_r1_counting.yaml", "count", {"count_pr1"}, {"Output all the bounding boxes of the "}}),
    [](const ::testing::TestParamInfo<Recipe>& info) {
      std::string n = fs::path(info.param.config).stem().string();
      for (char& ch : n)
        if (ch == '.') ch = '_';
      return n;
    });

}  // namespace
}  // namespace refract
