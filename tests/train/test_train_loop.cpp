// The training loop's behaviours that are not resume: TRL's old-log-prob rule across
// generation rounds, SFT's max_length (from the command line), the progress line's bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/atomic_file.h"
#include "data/validate.h"
#include "model/open_model.h"
#include "train/encode.h"
#include "train/train_logger.h"
#include "train_world.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;
using namespace refract::train;
using refract::testing::base;
using refract::testing::world;

namespace {

GrpoConfig round_config(const std::string& out) {
  GrpoConfig c;
  base(c, out);
  c.num_generations = 4;
  c.per_device_train_batch_size = 4;
  c.max_completion_length = 10;
  c.reward_funcs = {std::string("external:python3 ") + REFRACT_FIXTURES_DIR + "/train/distinct_chars_reward.py"};
  c.learning_rate = 1e-2;  // moves the policy visibly in one step
  c.epsilon = 1e-6;        // any ratio != 1 is clipped, so clip ratios show off-policy data
  return c;
}

}  // namespace

// One round of 2 prompts x 4 feeds two optimizer steps (steps_per_generation 2 > GA 1): the
// second step trains on completions sampled before the first update, so its ratios differ
// from 1 (TRL computes old log-probs for exactly this case) and the tiny epsilon clips them.
TEST(GrpoRounds, MicroBatchesAfterAnUpdateUseOldLogProbs) {
  GrpoConfig c = round_config(world().root + "/rounds_spg2");
  c.gradient_accumulation_steps = 1;
  c.steps_per_generation = 2;
  c.max_steps = 2;
  RunSummary r = run_grpo(c);
  ASSERT_EQ(r.log_history.size(), 2u);
  EXPECT_EQ(r.log_history[0]["clip_ratio/region_mean"].get<double>(), 0.0);  // on-policy
  EXPECT_GT(r.log_history[1]["clip_ratio/region_mean"].get<double>(), 0.0);  // off-policy
}

// The same round used up inside one optimizer step (GA = steps_per_generation = 2): no update
// happens between its micro-batches, so every ratio is exactly 1.
TEST(GrpoRounds, ARoundInsideOneStepIsOnPolicy) {
  GrpoConfig c = round_config(world().root + "/rounds_ga2");
  c.gradient_accumulation_steps = 2;
  c.steps_per_generation = 2;
  c.max_steps = 2;
  RunSummary r = run_grpo(c);
  for (const auto& e : r.log_history) EXPECT_EQ(e["clip_ratio/region_mean"].get<double>(), 0.0);
}

// `refract sft --max_length L` drops the samples whose prompt + response exceed L tokens before
// training (counted in the trainer state), instead of aborting on the first one.
TEST(SftMaxLength, TheCommandLineDropsLongerSamples) {
  const auto& w = world();
  // Lengths as the trainer encodes them (chat template, image tokens by the model's processor).
  model::ModelSettings ms;
  ms.model_name_or_path = w.model;
  model::OpenedModel m = model::open_model(ms);
  data::DataConfig dc;
  dc.data_file_paths = w.jsonl;
  dc.image_folders = w.images;
  dc.question_template = "none";
  data::Dataset ds = data::prepare_dataset(dc, &m.tok());
  std::vector<size_t> lengths;
  for (const auto& s : ds.samples) lengths.push_back(encode_sample(s, m.tok(), m.processor, true).full_ids.size());
  std::vector<size_t> sorted = lengths;
  std::sort(sorted.begin(), sorted.end());
  const size_t limit = sorted[sorted.size() / 2];
  const auto kept = std::count_if(lengths.begin(), lengths.end(), [&](size_t n) { return n <= limit; });
  ASSERT_GT(kept, 0);
  ASSERT_LT(kept, static_cast<long>(lengths.size()));

  const std::string out = w.root + "/sft_max_length";
  const std::string cmd = std::string(REFRACT_BINARY) + " sft --model " + w.model + refract::testing::device_flag() + " --data_file_paths " + w.jsonl +
                          " --image_folders " + w.images + " --question_template none --max_steps 1" +
                          " --per_device_train_batch_size 2 --report_to none --threads 1 --output_dir " + out +
                          " --max_length " + std::to_string(limit) + " > " + out + ".log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(out + ".log");
  const auto state = nlohmann::json::parse(read_file(out + "/checkpoint-1/trainer_state.json"));
  EXPECT_EQ(state["refract_data_state"]["num_samples"].get<int64_t>(), kept) << state.dump();
  EXPECT_NE(read_file(out + ".log").find("longer than max_length " + std::to_string(limit)), std::string::npos);
}

// A run bounded by max_seconds shows progress against the seconds, not against max_steps.
TEST(Progress, FollowsWhicheverBoundEndsTheRun) {
  LoggerSettings s;
  s.output_dir = world().root + "/progress";
  s.report_to = {"none"};
  s.total_steps = 1000000000000;
  s.max_seconds = 1;
  fs::create_directories(s.output_dir);
  TrainLogger by_time(s);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string t = by_time.progress(1, 1);
  EXPECT_NE(t.find("/1 s"), std::string::npos) << t;
  EXPECT_EQ(t.find("/1000000000000"), std::string::npos) << t;
  s.total_steps = 10;
  s.max_seconds = 1e9;
  TrainLogger by_steps(s);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_NE(by_steps.progress(1, 1).find("step 1/10"), std::string::npos) << by_steps.progress(1, 1);
}

// A reward setting given on the command line reaches the reward GRPO trains with: DAPO's soft
// overlong punishment is 0 for every length with its default soft_punish_cache (0), and
// -L / 12 for a completion of L <= 12 tokens once the whole budget is the punished cache.
TEST(RewardKwargs, ReachGrpoFromTheCommandLine) {
  const auto& w = world();
  auto run = [&](const std::string& name, const std::string& extra) {
    const std::string out = w.root + "/" + name;
    const std::string cmd = std::string(REFRACT_BINARY) + " grpo --model " + w.model + refract::testing::device_flag() + " --data_file_paths " +
                            w.jsonl + " --image_folders " + w.images +
                            " --question_template none --max_steps 1 --num_generations 4"
                            " --per_device_train_batch_size 4 --max_completion_length 12 --report_to none"
                            " --threads 1 --logging_steps 1 --reward_funcs soft_overlong --output_dir " +
                            out + extra + " > " + out + ".log 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << read_file(out + ".log");
    const auto state = nlohmann::json::parse(read_file(out + "/checkpoint-1/trainer_state.json"));
    return state["log_history"][0];
  };
  const auto plain = run("kwargs_default", "");
  EXPECT_EQ(plain["rewards/soft_overlong/mean"].get<double>(), 0.0) << plain.dump();
  const auto punished = run("kwargs_cache12", " --reward_kwargs soft_overlong.soft_punish_cache=12");
  const double mean = punished["rewards/soft_overlong/mean"].get<double>();
  const double len = punished["completions/mean_length"].get<double>();
  EXPECT_NEAR(mean, -len / 12.0, 1e-9) << punished.dump();
  EXPECT_LT(mean, 0.0);
}
