// Checkpoints: layout, rotation, resume resolution, and kill -9 in the middle of a save.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/atomic_file.h"
#include "temp_dir.h"
#include "train/checkpoint.h"
#include "train/train_logger.h"

namespace fs = std::filesystem;
using namespace refract::train;

namespace {

// An empty scratch directory, removed when the test process exits.
std::string fresh_dir(const std::string& name) { return refract::testing::process_temp_dir("train_" + name); }

struct Toy {
  torch::Tensor w = torch::randn({64, 64}).requires_grad_(true);
  std::unique_ptr<torch::optim::AdamW> opt =
      std::make_unique<torch::optim::AdamW>(std::vector<torch::Tensor>{w}, 1e-2);
  void step() {
    opt->zero_grad();
    w.pow(2).sum().backward();
    opt->step();
  }
};

// A "model" writer big enough (~16 MB) that a save takes a noticeable time.
void write_big_model(const std::string& dir, float fill) {
  std::string bytes(16 << 20, static_cast<char>(static_cast<int>(fill) & 0x7f));
  refract::write_file_atomic(dir + "/model.bin", bytes);
}

}  // namespace

TEST(Checkpoint, LayoutRotationAndResume) {
  const std::string out = fresh_dir("layout");
  Toy toy;
  TrainerState st;
  for (int step = 1; step <= 3; ++step) {
    toy.step();
    st.global_step = step;
    st.log_history.push_back({{"step", step}, {"loss", 1.0 / step}});
    save_checkpoint(out, st, [](const std::string& d) { refract::write_file_atomic(d + "/m", "x"); },
                    toy.opt.get(), /*save_total_limit=*/2);
  }
  auto all = list_checkpoints(out);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(fs::path(all[0]).filename(), "checkpoint-2");
  EXPECT_EQ(fs::path(all[1]).filename(), "checkpoint-3");
  for (const char* f : {"optimizer.pt", "rng_state.pt", "scheduler.json", "trainer_state.json", "m"})
    EXPECT_TRUE(fs::exists(all[1] + "/" + f)) << f;
  EXPECT_EQ(resolve_resume("true", out), all[1]);
  EXPECT_EQ(resolve_resume("", out), "");
  EXPECT_THROW(resolve_resume(out + "/nope", out), std::exception);
  auto j = nlohmann::json::parse(refract::read_file(all[1] + "/trainer_state.json"));
  EXPECT_EQ(j["global_step"], 3);
  EXPECT_EQ(j["log_history"].size(), 3u);

  // Restoring the optimizer gives the same next step as continuing.
  Toy a;
  a.w.data().copy_(toy.w.detach());
  TrainerState back = load_checkpoint(all[1], a.opt.get());
  EXPECT_EQ(back.global_step, 3);
  toy.step();
  a.step();
  EXPECT_TRUE(torch::equal(toy.w, a.w));
}

TEST(Checkpoint, KillNineDuringSaveKeepsPreviousCheckpoint) {
  const std::string out = fresh_dir("kill");
  at::set_num_threads(1);
  // Several rounds with the kill at different moments of the save.
  for (int round = 0; round < 4; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      Toy toy;
      TrainerState st;
      for (int step = 1;; ++step) {
        toy.step();
        st.global_step = step + round * 1000;
        st.log_history.push_back({{"step", st.global_step}});
        save_checkpoint(out, st, [&](const std::string& d) { write_big_model(d, step); },
                        toy.opt.get(), 2);
      }
    }
    // Wait for the child's first complete checkpoint of this round (slow on a loaded
    // machine), then kill at a varying moment of a later save.
    for (int i = 0; i < 600; ++i) {
      bool found = false;
      for (const auto& d : list_checkpoints(out))
        if (std::stoll(fs::path(d).filename().string().substr(11)) > round * 1000) found = true;
      if (found) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + 170 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    // Every complete checkpoint loads; the latest exists whatever moment the kill hit.
    auto all = list_checkpoints(out);
    ASSERT_FALSE(all.empty()) << "round " << round;
    for (const auto& dir : all) {
      Toy t;
      TrainerState s = load_checkpoint(dir, t.opt.get());
      EXPECT_EQ(fs::file_size(dir + "/model.bin"), 16u << 20) << dir;
      EXPECT_EQ("checkpoint-" + std::to_string(s.global_step), fs::path(dir).filename().string());
    }
  }
  // A new save cleans the temporaries of the dead processes.
  Toy toy;
  TrainerState st;
  st.global_step = 99999;
  save_checkpoint(out, st, nullptr, toy.opt.get(), 0);
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(TrainLogger, MeansOverLoggingStepsAndHistory) {
  const std::string out = fresh_dir("logger");
  LoggerSettings s;
  s.output_dir = out;
  s.logging_steps = 2;
  s.total_steps = 5;
  s.quiet = true;
  s.report_to = {"none"};
  TrainLogger log(s);
  EXPECT_FALSE(log.step(1, 0.1, {{"loss", 1.0}}));
  EXPECT_TRUE(log.step(2, 0.2, {{"loss", 3.0}, {"reward", 0.5}}));
  log.step(3, 0.3, {{"loss", 5.0}});
  log.step(4, 0.4, {{"loss", 7.0}});
  EXPECT_TRUE(log.step(5, 0.5, {{"loss", 9.0}}));  // the last step always logs
  const auto& h = log.log_history();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_DOUBLE_EQ(h[0]["loss"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(h[0]["reward"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(h[1]["loss"].get<double>(), 6.0);
  EXPECT_EQ(h[2]["step"], 5);
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 3);
  EXPECT_EQ(TrainLogger::format_metrics({{"reward", 0.25}, {"loss", 1.5}, {"a", 2e-7}}),
            "loss=1.5 reward=0.25 a=2.000e-07");
  // A long name keeps its value (the line once went through a 96-byte buffer).
  const std::string name = "rewards/external:" + std::string(120, 'x') + "/mean";
  EXPECT_EQ(TrainLogger::format_metrics({{name, -1.5e-9}}), name + "=-1.500e-09");
}
