// `refract eval` on the shipped demo warm start (a model that localises): its summary, computed
// by the `refract score` code from the files it writes, equals the demo's evaluator, which
// scores through the `iou` reward instead (two independent paths from completion to IoU).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/load.h"
#include "data/rng.h"
#include "data/shapes/synth.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "commands/eval.h"
#include "generate/generator.h"
#include "train/encode.h"
#include "train/evaluate.h"
#include "temp_dir.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;

TEST(Eval, RecSummaryEqualsTheRewardPathOnTheWarmStart) {
  const std::string model_dir = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
  const refract::testing::TempDir tmp("eval");
  const std::string root = tmp.path();
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

// Evaluation generates through the serving engine (generate::decode_all: prompts join a
// continuous batch in groups, prefilled together). On the warm start its predictions equal
// those of generate()'s fixed batches of per_device_eval_batch_size prompts (what eval ran
// before): greedy, and sampled (k = 2) with eval's seed rule (seed derived from the batch's
// first sample, stream = position in the batch * k + j).
TEST(Eval, EngineGivesTheFixedBatchPredictions) {
  const refract::testing::TempDir tmp("eval_engine");
  const std::string root = tmp.path();
  data::shapes::SynthConfig sc;
  sc.num_samples = 24;
  sc.seed = 12;
  sc.output = root + "/data";
  sc.num_workers = 1;
  const auto synth = data::shapes::synthesize(sc);
  data::DataConfig dc;
  dc.data_file_paths = synth.jsonl_path;
  dc.image_folders = root + "/data";
  dc.question_template = "none";
  const auto samples = data::load_dataset(dc).samples;
  model::ModelSettings ms;
  ms.model_name_or_path = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
  ms.device = refract::testing::test_device_name();
  ms.threads = 2;
  const model::OpenedModel m = model::open_model(ms);
  m.model.ptr()->eval();
  for (const int64_t k : {1, 2}) {
    SCOPED_TRACE(k == 1 ? "greedy" : "sampled, k = 2");
    train::EvalGeneration g;
    g.batch_size = 8;
    g.max_new_tokens = 48;
    g.num_samples_per_prompt = k;
    g.temperature = 1.0;
    g.seed = 3;
    const auto got = train::generate_for_eval(m, samples, g);
    int64_t tokens = 0;
    for (size_t s = 0; s < samples.size(); s += 8) {
      std::vector<generate::PromptInput> prompts;
      for (size_t i = s; i < s + 8; ++i) {
        const train::EncodedSample e = train::encode_sample(samples[i], m.tok(), m.processor, false);
        prompts.push_back(train::prompt_input(e));
      }
      generate::GenerationConfig gc;
      gc.max_new_tokens = g.max_new_tokens;
      gc.do_sample = k > 1;
      gc.temperature = g.temperature;
      gc.seed = static_cast<int64_t>(data::derive_seed(static_cast<uint64_t>(g.seed), s) >> 1);
      gc.stop_token_ids = m.stop_token_ids;
      gc.num_generations = k;
      gc.pad_token_id = m.pad_token_id;
      const generate::GenerationResult expect = generate::generate(*m.model.ptr(), prompts, gc);
      for (const generate::Completion& c : expect.completions) {
        const size_t i = s + static_cast<size_t>(c.prompt_index);
        EXPECT_EQ(got[i][c.generation_index].ids, std::vector<int32_t>(c.ids.begin(), c.ids.end()))
            << "sample " << i << " draw " << c.generation_index;
        tokens += static_cast<int64_t>(c.ids.size());
      }
    }
    EXPECT_GT(tokens, 24 * k * 5) << "completions of some length (not all cut at once)";
  }
}
