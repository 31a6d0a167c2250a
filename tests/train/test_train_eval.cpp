// Evaluation during training (eval_strategy: steps) on the tiny world: when it runs and what it
// logs, that it leaves the training trajectory untouched, and the best checkpoint
// (metric_for_best_model) under save_total_limit and across a resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/check.h"
#include "data/shapes/synth.h"
#include "train/checkpoint.h"
#include "train_world.h"

namespace fs = std::filesystem;
using namespace refract;
using namespace refract::train;
using refract::testing::base;
using refract::testing::world;

namespace {

// Held-out REC samples: another seed of the same world.
const std::string& heldout() {
  static const std::string path = [] {
    data::shapes::SynthConfig sc;
    sc.num_samples = 6;
    sc.seed = 99;
    sc.output = world().root + "/heldout";
    sc.num_workers = 1;
    return data::shapes::synthesize(sc).jsonl_path;
  }();
  return path;
}

template <typename Cfg>
void with_eval(Cfg& c, int64_t eval_steps) {
  c.eval_strategy = "steps";
  c.eval_steps = eval_steps;
  c.eval_data_file_paths = heldout();
  c.eval_max_samples = 4;
  c.per_device_eval_batch_size = 4;
  c.eval_max_new_tokens = 8;
}

bool is_eval(const nlohmann::json& e) { return e.contains("eval/accuracy"); }

// Training entries of a log history without wall-clock values.
nlohmann::json training_entries(const nlohmann::json& h) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : refract::testing::comparable(h))
    if (!is_eval(e)) out.push_back(e);
  return out;
}

std::vector<std::string> checkpoint_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& p : list_checkpoints(dir)) out.push_back(fs::path(p).filename().string());
  return out;
}

nlohmann::json state_of(const std::string& checkpoint) {
  return nlohmann::json::parse(read_file(checkpoint + "/trainer_state.json"));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainEval, RunsEveryEvalStepsAndLogsEvalMetrics) {
  const std::string out = world().root + "/eval_steps";
  SftConfig c;
  base(c, out);
  c.per_device_train_batch_size = 4;
  c.max_steps = 5;
  with_eval(c, 2);
  const RunSummary r = run_sft(c);
  std::vector<int64_t> eval_steps;
  for (const auto& e : r.log_history) {
    if (!is_eval(e)) continue;
    eval_steps.push_back(e["step"].get<int64_t>());
    // The REC summary's metrics, each under eval/ (the same names `refract eval` reports).
    for (const char* k : {"eval/accuracy", "eval/acc@0.1", "eval/acc@0.5", "eval/acc@0.95", "eval/mean_iou",
                          "eval/center_accuracy", "eval/runtime"})
      EXPECT_TRUE(e.contains(k)) << k << " in " << e.dump();
    EXPECT_FALSE(e.contains("loss"));
  }
  EXPECT_EQ(eval_steps, (std::vector<int64_t>{2, 4}));
  for (int step : {2, 4}) {
    const std::string dir = out + "/eval/step-" + std::to_string(step);
    std::ifstream preds(dir + "/predictions.jsonl");
    int lines = 0;
    for (std::string l; std::getline(preds, l);) ++lines;
    EXPECT_EQ(lines, 4);  // eval_max_samples
    EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/eval.json"))["task"], "rec");
  }
  EXPECT_FALSE(fs::exists(out + "/eval/step-5"));
  // metrics.jsonl carries the evaluation entries as well.
  EXPECT_NE(read_file(out + "/metrics.jsonl").find("eval/mean_iou"), std::string::npos);
}

// Evaluating between steps leaves the weights after N steps exactly as without it.
TEST(TrainEval, DoesNotChangeTheTrainingTrajectory) {
  const std::string a = world().root + "/eval_traj_sft_a", b = world().root + "/eval_traj_sft_b";
  SftConfig c;
  base(c, a);
  c.per_device_train_batch_size = 4;
  c.max_steps = 4;
  const RunSummary ra = run_sft(c);
  c.output_dir = b;
  with_eval(c, 1);
  const RunSummary rb = run_sft(c);
  EXPECT_EQ(read_file(a + "/checkpoint-4/model.safetensors"), read_file(b + "/checkpoint-4/model.safetensors"));
  EXPECT_EQ(training_entries(ra.log_history), training_entries(rb.log_history));
  EXPECT_EQ(rb.log_history.size(), ra.log_history.size() + 4);

  // GRPO samples with the rollout engine between evaluations: the same holds.
  const std::string ga = world().root + "/eval_traj_grpo_a", gb = world().root + "/eval_traj_grpo_b";
  GrpoConfig g;
  base(g, ga);
  g.num_generations = 4;
  g.per_device_train_batch_size = 4;
  g.max_completion_length = 10;
  g.reward_funcs = {std::string("external:python3 ") + REFRACT_FIXTURES_DIR + "/train/distinct_chars_reward.py"};
  g.max_steps = 2;
  const RunSummary rga = run_grpo(g);
  g.output_dir = gb;
  with_eval(g, 1);
  const RunSummary rgb = run_grpo(g);
  EXPECT_EQ(read_file(ga + "/checkpoint-2/model.safetensors"), read_file(gb + "/checkpoint-2/model.safetensors"));
  EXPECT_EQ(training_entries(rga.log_history), training_entries(rgb.log_history));
}

// The best checkpoint is the saved step whose evaluation scored best (first on ties), recorded
// as HF records it, kept by save_total_limit 1 beside the latest, and what the run reports with
// load_best_model_at_end. A random model finds no box, so the held-out REC answers are scored
// as text (eval_task ocr): their edit similarity to the reference moves as SFT teaches the format.
TEST(TrainEval, BestCheckpointIsKeptAndReported) {
  auto best_of = [](const nlohmann::json& history, bool greater, double* value) {
    int64_t step = -1;
    for (const auto& e : history) {
      if (!e.contains("eval/edit_similarity")) continue;
      const double v = e["eval/edit_similarity"].get<double>();
      if (step < 0 || (greater ? v > *value : v < *value)) *value = v, step = e["step"].get<int64_t>();
    }
    return step;
  };
  const std::string out = world().root + "/eval_best";
  SftConfig c;
  base(c, out);
  c.per_device_train_batch_size = 4;
  c.max_steps = 6;
  c.save_steps = 2;
  c.save_total_limit = 1;
  with_eval(c, 2);
  c.eval_task = "ocr";
  c.eval_max_new_tokens = 24;
  c.metric_for_best_model = "edit_similarity";
  c.load_best_model_at_end = true;
  const RunSummary r = run_sft(c);
  double best = 0;
  const int64_t best_step = best_of(r.log_history, true, &best);
  ASSERT_GT(best_step, 0);
  const std::string best_dir = out + "/checkpoint-" + std::to_string(best_step);
  const auto st = state_of(out + "/checkpoint-6");
  EXPECT_EQ(st["best_model_checkpoint"], best_dir);
  EXPECT_EQ(st["best_metric"].get<double>(), best);
  EXPECT_EQ(r.final_checkpoint, best_dir);
  std::vector<std::string> expect = {"checkpoint-" + std::to_string(best_step)};
  if (best_step != 6) expect.push_back("checkpoint-6");
  EXPECT_EQ(checkpoint_names(out), expect);

  // Lower is better (greater_is_better false; "eval/" prefixed names accepted): the lowest.
  const std::string low = world().root + "/eval_best_low";
  c.output_dir = low;
  c.metric_for_best_model = "eval/edit_similarity";
  c.greater_is_better = "false";
  const RunSummary rl = run_sft(c);
  const int64_t low_step = best_of(rl.log_history, false, &best);
  EXPECT_EQ(state_of(low + "/checkpoint-6")["best_model_checkpoint"], low + "/checkpoint-" + std::to_string(low_step));
  EXPECT_EQ(state_of(low + "/checkpoint-6")["best_metric"].get<double>(), best);
  // The evaluations differ, so the two choices are not the same first-of-equals.
  EXPECT_NE(best_step, low_step);
}

// A resumed run continues from the best it had: the best of steps 2-4 still competes with
// (and, on a tie, beats) the evaluation of step 6, and stays on disk under save_total_limit.
TEST(TrainEval, ResumeKeepsTheBestMetric) {
  const std::string a = world().root + "/eval_resume_a", b = world().root + "/eval_resume_b";
  SftConfig c;
  base(c, a);
  c.per_device_train_batch_size = 4;
  c.max_steps = 6;
  c.save_steps = 2;
  c.save_total_limit = 1;
  with_eval(c, 2);
  c.metric_for_best_model = "accuracy";
  c.greater_is_better = "false";  // 0 at the first evaluation can never be beaten: best = step 2
  const RunSummary ra = run_sft(c);
  c.output_dir = b;
  c.max_steps = 4;
  run_sft(c);
  c.max_steps = 6;
  c.resume_from_checkpoint = "true";
  const RunSummary rb = run_sft(c);
  EXPECT_EQ(rb.first_step, 5);
  const auto sa = state_of(a + "/checkpoint-6"), sb = state_of(b + "/checkpoint-6");
  EXPECT_EQ(sa["best_model_checkpoint"], a + "/checkpoint-2");
  EXPECT_EQ(sb["best_model_checkpoint"], b + "/checkpoint-2");
  EXPECT_EQ(sb["best_metric"], sa["best_metric"]);
  EXPECT_EQ(checkpoint_names(b), (std::vector<std::string>{"checkpoint-2", "checkpoint-6"}));
  EXPECT_EQ(read_file(a + "/checkpoint-6/model.safetensors"), read_file(b + "/checkpoint-6/model.safetensors"));
  EXPECT_EQ(training_entries(ra.log_history), training_entries(rb.log_history));
}

// HF's rotation with a best checkpoint: it moves to the second-newest place, a limit of 1
// keeps it beside the newest.
TEST(TrainEval, RotationNeverDeletesTheBest) {
  const std::vector<std::string> all = {"o/checkpoint-2", "o/checkpoint-4", "o/checkpoint-6", "o/checkpoint-8"};
  EXPECT_EQ(checkpoints_to_delete(all, 1, "o/checkpoint-4"),
            (std::vector<std::string>{"o/checkpoint-2", "o/checkpoint-6"}));
  EXPECT_EQ(checkpoints_to_delete(all, 2, "o/checkpoint-2"),
            (std::vector<std::string>{"o/checkpoint-4", "o/checkpoint-6"}));
  EXPECT_EQ(checkpoints_to_delete(all, 1, "o/checkpoint-8"),
            (std::vector<std::string>{"o/checkpoint-2", "o/checkpoint-4", "o/checkpoint-6"}));
  EXPECT_EQ(checkpoints_to_delete(all, 3, ""), (std::vector<std::string>{"o/checkpoint-2"}));
  EXPECT_TRUE(checkpoints_to_delete(all, 0, "o/checkpoint-4").empty());
}

TEST(TrainEval, SettingsThatContradictEachOtherAreErrors) {
  SftConfig c;
  base(c, world().root + "/eval_errors");
  c.max_steps = 1;
  c.eval_strategy = "steps";
  EXPECT_NE(error_of([&] { validate(c); }).find("eval_data_file_paths"), std::string::npos);
  with_eval(c, 2);
  c.load_best_model_at_end = true;
  EXPECT_NE(error_of([&] { validate(c); }).find("needs metric_for_best_model"), std::string::npos);
  c.metric_for_best_model = "accuracy";
  c.save_steps = 3;
  EXPECT_NE(error_of([&] { validate(c); }).find("multiple of eval_steps"), std::string::npos);
  c.load_best_model_at_end = false;
  c.metric_for_best_model = "AP";  // a detection metric; the held-out data is REC
  const std::string e = error_of([&] { run_sft(c); });
  EXPECT_NE(e.find("metric_for_best_model 'AP' is not a metric of the rec evaluation"), std::string::npos) << e;
  EXPECT_NE(e.find("mean_iou"), std::string::npos) << e;
  c.eval_strategy = "no";
  c.metric_for_best_model = "";
  EXPECT_NE(error_of([&] { validate(c); }).find("eval_strategy is no"), std::string::npos);
}
