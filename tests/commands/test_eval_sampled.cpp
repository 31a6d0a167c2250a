// Sampled evaluation (num_samples_per_prompt k): mean@k of every metric and pass@j from the
// unbiased estimator, checked against hand computations; then on the warm start end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "commands/eval.h"
#include "common/atomic_file.h"
#include "data/shapes/synth.h"
#include "rewards/score.h"
#include "train/evaluate.h"
#include "temp_dir.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;

// 1 - C(n-c, k) / C(n, k) by hand, n = 5 samples of which c = 2 are correct:
// k=1: 1 - 3/5; k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10; k=3: 1 - C(3,3)/C(5,3) = 1 - 1/10;
// k=4: C(3,4) = 0 -> 1.
TEST(EvalSampled, PassAtKIsTheUnbiasedEstimator) {
  EXPECT_NEAR(rewards::pass_at_k(5, 2, 1), 0.4, 1e-15);
  EXPECT_NEAR(rewards::pass_at_k(5, 2, 2), 0.7, 1e-15);
  EXPECT_NEAR(rewards::pass_at_k(5, 2, 3), 0.9, 1e-15);
  EXPECT_EQ(rewards::pass_at_k(5, 2, 4), 1.0);
  EXPECT_EQ(rewards::pass_at_k(5, 0, 3), 0.0);
  EXPECT_EQ(rewards::pass_at_k(5, 5, 1), 1.0);
  // n = 10, c = 3, k = 4: 1 - C(7,4)/C(10,4) = 1 - 35/210.
  EXPECT_NEAR(rewards::pass_at_k(10, 3, 4), 1.0 - 35.0 / 210.0, 1e-15);
  EXPECT_THROW(rewards::pass_at_k(3, 1, 4), std::exception);
}

namespace {

train::EvalDataset dataset(const std::string& task, const std::vector<nlohmann::json>& solutions) {
  train::EvalDataset d;
  d.name = "hand";
  d.task = task;
  for (size_t i = 0; i < solutions.size(); ++i) {
    data::Sample s;
    s.id = "s" + std::to_string(i);
    s.task = task;
    s.solution = solutions[i];
    d.samples.push_back(s);
  }
  return d;
}

std::vector<std::vector<train::GreedyCompletion>> draws(const std::vector<std::vector<std::string>>& texts) {
  std::vector<std::vector<train::GreedyCompletion>> out;
  for (const auto& row : texts) {
    out.emplace_back();
    for (const auto& t : row) out.back().push_back({{}, t, "", {}});
  }
  return out;
}

}  // namespace

// Counting, k = 4. Sample A (answer 3): 3, 2, 3, 5 -> c = 2; sample B (answer 4): 1, 1, 1, 1 ->
// c = 0. mean@4 = 2/8; pass@1 = (2/4 + 0)/2; pass@2 = (1 - C(2,2)/C(4,2) + 0)/2 = (5/6)/2;
// pass@4 = (1 + 0)/2. Per draw, accuracy 1/2, 0, 1/2, 0 (mean 1/4) and MAE (0+3)/2, (1+3)/2,
// (0+3)/2, (2+3)/2 (mean 1.875).
TEST(EvalSampled, CountMeanAndPassAtKByHand) {
  const auto d = dataset("count", {3, 4});
  const auto r = train::score_completions(d, draws({{"<answer>3</answer>", "2", "3", "5"}, {"1", "1", "1", "1"}}),
                                          train::EvalSettings{});
  const auto& s = r.report["summary"];
  EXPECT_DOUBLE_EQ(s["mean@4"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(s["pass@1"].get<double>(), 0.25);
  EXPECT_NEAR(s["pass@2"].get<double>(), 5.0 / 12.0, 1e-15);
  EXPECT_DOUBLE_EQ(s["pass@4"].get<double>(), 0.5);
  EXPECT_FALSE(s.contains("pass@3"));  // j = 1, 2, 4, ... and k
  EXPECT_DOUBLE_EQ(s["accuracy"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(s["mae"].get<double>(), 1.875);
  EXPECT_EQ(s["n"], 2);
  EXPECT_EQ(r.report["samples"][0]["num_correct"], 2);
  EXPECT_EQ(r.report["num_samples_per_prompt"], 4);
  // predictions.jsonl keeps every draw (the first also as "prediction", for refract score).
  const auto first = nlohmann::json::parse(r.predictions_jsonl.substr(0, r.predictions_jsonl.find('\n')));
  EXPECT_EQ(first["prediction"], "<answer>3</answer>");
  EXPECT_EQ(first["predictions"].size(), 4u);
  EXPECT_EQ(r.metrics.at("pass@2"), s["pass@2"].get<double>());
}

// REC, k = 3, one sample with GT [0, 0, 10, 10]: IoU 1 (correct), exactly 0.5 (not: Acc@0.5 is
// strict), 0 -> c = 1: pass@2 = 1 - C(2,2)/C(3,2) = 2/3; mean IoU over draws (1 + 0.5 + 0)/3.
// OCR, k = 2: "AB12" vs "AB12" and "AB13" -> c = 1, pass@2 = 1, edit similarity (1 + 3/4)/2.
TEST(EvalSampled, RecAndOcrByHand) {
  train::EvalSettings st;
  st.coordinate_format = "absolute";
  auto rec = train::score_completions(
      dataset("rec", {nlohmann::json::array({0, 0, 10, 10})}),
      draws({{"<answer>[0, 0, 10, 10]</answer>", "<answer>[0, 0, 5, 10]</answer>", "[20, 20, 30, 30]"}}), st);
  EXPECT_NEAR(rec.report["summary"]["pass@2"].get<double>(), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(rec.report["summary"]["pass@1"].get<double>(), 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(rec.report["summary"]["mean_iou"].get<double>(), 0.5, 1e-15);
  EXPECT_NEAR(rec.report["summary"]["acc@0.5"].get<double>(), 2.0 / 3.0, 1e-15);  // IoU >= 0.5 (PR1)
  auto ocr = train::score_completions(dataset("ocr", {"AB12"}), draws({{"AB12", "AB13"}}), st);
  EXPECT_DOUBLE_EQ(ocr.report["summary"]["pass@2"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(ocr.report["summary"]["mean@2"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(ocr.report["summary"]["edit_similarity"].get<double>(), (1.0 + 0.75) / 2.0);
  // The names training checks metric_for_best_model against.
  const auto names = train::eval_metric_names("ocr", 2);
  for (const char* n : {"cer", "edit_similarity", "mean@2", "pass@1", "pass@2"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

// The warm start sampled 4 times per prompt at temperature 1: pass@1 equals mean@4 (the
// unbiased pass@1 is the mean correctness), pass@j grows with j and matches the estimator on
// the per-sample correct counts; the same seed gives the same draws.
TEST(EvalSampled, EndToEndOnTheWarmStart) {
  const refract::testing::TempDir tmp("eval_sampled");
  const std::string root = tmp.path();
  data::shapes::SynthConfig sc;
  sc.num_samples = 8;
  sc.seed = 31;
  sc.output = root + "/data";
  sc.num_workers = 1;
  const auto synth = data::shapes::synthesize(sc);
  commands::EvalConfig c;
  c.model_name_or_path = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
  c.device = refract::testing::test_device_name();
  c.data.data_file_paths = synth.jsonl_path;
  c.data.question_template = "none";
  c.per_device_eval_batch_size = 8;
  c.max_new_tokens = 48;
  c.threads = 2;
  c.num_samples_per_prompt = 4;
  c.temperature = 1.0;
  c.seed = 5;
  c.output_dir = root + "/a";
  const nlohmann::json r = commands::run_eval(c);
  const auto& s = r["summary"];
  EXPECT_NEAR(s["pass@1"].get<double>(), s["mean@4"].get<double>(), 1e-12);
  EXPECT_LE(s["pass@1"].get<double>(), s["pass@2"].get<double>());
  EXPECT_LE(s["pass@2"].get<double>(), s["pass@4"].get<double>());
  double p2 = 0, p4 = 0;
  for (const auto& x : r["samples"]) {
    const int64_t k = x["num_correct"].get<int64_t>();
    p2 += rewards::pass_at_k(4, k, 2) / 8.0;
    p4 += (k > 0 ? 1.0 : 0.0) / 8.0;
  }
  EXPECT_NEAR(s["pass@2"].get<double>(), p2, 1e-12);
  EXPECT_NEAR(s["pass@4"].get<double>(), p4, 1e-12);
  EXPECT_GT(s["pass@4"].get<double>(), 0.0);  // the warm start finds some targets
  std::ifstream preds(c.output_dir + "/predictions.jsonl");
  std::string line;
  std::getline(preds, line);
  EXPECT_EQ(nlohmann::json::parse(line)["predictions"].size(), 4u);
  c.output_dir = root + "/b";
  commands::run_eval(c);
  EXPECT_EQ(read_file(root + "/a/predictions.jsonl"), read_file(root + "/b/predictions.jsonl"));
}
