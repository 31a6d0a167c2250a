// `refract eval` on the shipped demo warm start (a model that localises): its summary, computed
// by the `refract score` code from the files it writes, equals the demo's evaluator, which
// scores through the `iou` reward instead (two independent paths from completion to IoU).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/load.h"
#include "data/shapes/synth.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "commands/eval.h"
#include "train/evaluate.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;

TEST(Eval, RecSummaryEqualsTheRewardPathOnTheWarmStart) {
  const std::string model_dir = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
  const std::string root = fs::temp_directory_path().string() + "/refract_eval_" + std::to_string(::getpid());
  fs::remove_all(root);
  data::shapes::SynthConfig sc;
  sc.num_samples = 48;
  sc.seed = 11;
  sc.output = root + "/data";
  sc.num_workers = 1;
  const auto synth = data::shapes::synthesize(sc);

  commands::EvalConfig ec;
  ec.model_name_or_path = model_dir;
  ec.device = refract::testing::test_device_name();
  ec.data.data_file_paths = synth.jsonl_path;
  ec.data.image_folders = root + "/data";
  ec.data.question_template = "none";
  ec.per_device_eval_batch_size = 16;
  ec.max_new_tokens = 64;
  ec.threads = 2;
  ec.output_dir = root + "/eval";
  const nlohmann::json r = commands::run_eval(ec);
  EXPECT_EQ(r["task"], "rec");
  const auto& s = r["summary"];

  data::DataConfig dc = ec.data;
  auto samples = data::load_dataset(dc).samples;
  model::ModelSettings ms;
  ms.model_name_or_path = model_dir;
  ms.device = refract::testing::test_device_name();
  const model::OpenedModel opened = model::open_model(ms);
  train::RecEvalOptions opt;
  opt.batch_size = 16;
  opt.max_new_tokens = 64;
  const train::RecEvalResult ref = train::evaluate_rec(opened, samples, opt);
  ASSERT_EQ(ref.num_samples, 48);
  EXPECT_NEAR(s["accuracy"].get<double>(), ref.acc50, 1e-12);
  EXPECT_NEAR(s["mean_iou"].get<double>(), ref.miou, 1e-9);
  // The warm start localises (so the comparison is not 0 == 0).
  EXPECT_GT(ref.miou, 0.2);

  // The files it writes: one prediction and one reference (with the image sizes) per sample.
  std::ifstream refs(root + "/eval/references.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(refs, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_GT(j["width"].get<int>(), 0);
    EXPECT_EQ(j["resized_width"], j["width"]);  // shapes-world sides are multiples of 28
    ++n;
  }
  EXPECT_EQ(n, 48);
  EXPECT_TRUE(fs::exists(root + "/eval/eval.json"));
  EXPECT_TRUE(fs::exists(root + "/eval/predictions.jsonl"));
}
