// Data-parallel training end to end: two `refract` processes on 127.0.0.1 (Gloo) against one.
// The data order and sampling seeds depend only on (seed, step, sample), each rank's loss is
// its share of the global loss and gradients are summed, so 2 ranks x batch B must give the
// weights and metrics of 1 process x batch 2B up to the order of floating-point sums
// (max |diff| <= 1e-5 after several steps on the tiny model).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "../train/train_world.h"
#include "common/atomic_file.h"
#include "distributed/launcher.h"
#include "io/torch_tensors.h"
#include "train/checkpoint.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace refract;
using refract::testing::world;

namespace {

constexpr double kTol = 1e-5;

// The flags every run here shares (the tiny world of tests/train/train_world.h).
std::string common(const std::string& out, const std::string& save_steps = "2", const std::string& timeout = "120") {
  const auto& w = world();
  return " --model " + w.model + " --data_file_paths " + w.jsonl + " --image_folders " + w.images +
         " --question_template none --report_to none --threads 1 --logging_steps 1"
         " --lr_scheduler_type constant --learning_rate 1e-3 --seed 5 "
         " --save_steps " + save_steps + " --ddp_timeout " + timeout + " --output_dir " + out;
}

// Runs `refract <args>`; returns the exit code, the log in out + ".log".
int run_refract(const std::string& args, const std::string& out) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + args + " > " + out + ".log 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

double max_abs_diff(const std::string& a, const std::string& b) {
  const auto ta = io::load_tensors(a), tb = io::load_tensors(b);
  EXPECT_EQ(ta.size(), tb.size());
  double d = 0;
  for (const auto& [k, v] : ta) {
    EXPECT_TRUE(tb.count(k)) << k;
    if (!tb.count(k)) continue;
    d = std::max(d, (v.to(torch::kFloat64) - tb.at(k).to(torch::kFloat64)).abs().max().item<double>());
  }
  return d;
}

nlohmann::json history(const std::string& checkpoint) {
  return nlohmann::json::parse(read_file(checkpoint + "/trainer_state.json"))["log_history"];
}

// Every logged metric of `a` equals `b`'s within kTol (relative to max(1, |value|)), except
// wall-clock and communication figures.
void expect_same_metrics(const nlohmann::json& a, const nlohmann::json& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (const auto& [k, v] : a[i].items()) {
      if (k == "step_time" || k.rfind("time/", 0) == 0 || k.rfind("communication/", 0) == 0) continue;
      ASSERT_TRUE(b[i].contains(k)) << "entry " << i << " lacks " << k;
      const double x = v.get<double>(), y = b[i][k].get<double>();
      EXPECT_LE(std::abs(x - y), kTol * std::max(1.0, std::abs(x))) << "entry " << i << " " << k << ": " << x << " vs " << y;
    }
}

// One rank started by hand with the torchrun variables; returns its pid.
pid_t spawn_rank(int rank, int port, const std::string& args, const std::string& log) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("RANK=" + std::to_string(rank));
  env.push_back("LOCAL_RANK=" + std::to_string(rank));
  env.push_back("WORLD_SIZE=2");
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  const std::string sh = "exec " + std::string(REFRACT_BINARY) + " " + args + " > " + log + " 2>&1";
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", sh.c_str(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), envp.data()), 0);
  return pid;
}

// Waits up to `seconds` for pid; returns its exit code (128 + signal), or -1 if still running.
int wait_for(pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

const std::string kGrpo =
    " --num_generations 4 --max_completion_length 12 --reward_funcs iou format 'external:python3 " REFRACT_FIXTURES_DIR
    "/train/distinct_chars_reward.py'";

// GRPO's gradients are exactly 0 in expectation on many weights of an untrained model
// (advantages sum to 0 over a group), so some entries are ~1e-9 and sum-order noise on them is
// relatively large; AdamW's first steps move a weight by ~lr x g / (|g| + eps), which turns
// that noise into differences of up to lr when eps (1e-8) is below |g|. A larger eps keeps
// the comparison about the data-parallel maths instead of Adam's amplification of rounding.
// SFT's tiny gradients too: with libtorch 2.x (MKL) SFT differed by 1.1e-5 at eps 1e-8.
const std::string kEps = " --adam_epsilon 1e-6";

}  // namespace

TEST(DataParallel, SftTwoRanksOfBEqualOneRankOf2B) {
  const std::string one = world().root + "/sft_1x4", two = world().root + "/sft_2x2";
  ASSERT_EQ(run_refract("sft" + common(one) + kEps + " --max_steps 4 --per_device_train_batch_size 4 --gradient_accumulation_steps 2", one), 0)
      << read_file(one + ".log");
  ASSERT_EQ(run_refract("sft" + common(two) + kEps +
                        " --max_steps 4 --per_device_train_batch_size 2 --gradient_accumulation_steps 2"
                        " --nproc_per_node 2 --master_port 0",
                    two),
            0)
      << read_file(two + ".log");
  EXPECT_LE(max_abs_diff(one + "/checkpoint-4/model.safetensors", two + "/checkpoint-4/model.safetensors"), kTol);
  expect_same_metrics(history(one + "/checkpoint-4"), history(two + "/checkpoint-4"));
  const auto h = history(two + "/checkpoint-4");
  EXPECT_LT(h[3]["loss"].get<double>(), h[0]["loss"].get<double>());  // it trains at all
  // Rank 0 alone writes; the launcher prefixes its workers' lines.
  const std::string log = read_file(two + ".log");
  EXPECT_NE(log.find("[rank 0] "), std::string::npos) << log;
  for (size_t at = log.find("[rank 1] "); at != std::string::npos; at = log.find("[rank 1] ", at + 1))
    EXPECT_EQ(log.substr(at, log.find('\n', at) - at).find(" step "), std::string::npos) << "rank 1 printed progress:\n" << log;
  EXPECT_GT(h[0]["communication/bytes"].get<double>(), 0.0);
}

// num_iterations 2 with GA 2 reuses each round over two steps with old log-probs; beta 0.
TEST(DataParallel, GrpoTwoRanksEqualOneRankBeta0) {
  const std::string one = world().root + "/grpo_b0_1", two = world().root + "/grpo_b0_2";
  const std::string args = kGrpo + " --max_steps 4 --gradient_accumulation_steps 2 --num_iterations 2 --beta 0" + kEps;
  ASSERT_EQ(run_refract("grpo" + common(one) + args + " --per_device_train_batch_size 4", one), 0) << read_file(one + ".log");
  ASSERT_EQ(run_refract("grpo" + common(two) + args + " --per_device_train_batch_size 2 --nproc_per_node 2 --master_port 0", two), 0)
      << read_file(two + ".log");
  EXPECT_LE(max_abs_diff(one + "/checkpoint-4/model.safetensors", two + "/checkpoint-4/model.safetensors"), kTol);
  const auto h = history(two + "/checkpoint-4");
  expect_same_metrics(history(one + "/checkpoint-4"), h);
  EXPECT_GT(h[0]["grad_norm"].get<double>(), 0.0);
  EXPECT_GT(h[0]["reward_std"].get<double>(), 0.0);
}

// beta > 0 (the frozen reference copy), the loss types that normalise over the micro-batch
// (bnpo: its tokens, grpo: its sequences), and top_entropy_quantile (a quantile over all ranks).
TEST(DataParallel, GrpoTwoRanksEqualOneRankBetaAndLossTypes) {
  for (const std::string loss : {"bnpo", "grpo", "dr_grpo"}) {
    const std::string one = world().root + "/grpo_kl_1_" + loss, two = world().root + "/grpo_kl_2_" + loss;
    const std::string args = kGrpo + " --max_steps 2 --gradient_accumulation_steps 2 --num_iterations 2 --beta 0.04" +
                             " --top_entropy_quantile 0.5 --loss_type " + loss + kEps;
    ASSERT_EQ(run_refract("grpo" + common(one) + args + " --per_device_train_batch_size 4", one), 0) << read_file(one + ".log");
    ASSERT_EQ(run_refract("grpo" + common(two) + args + " --per_device_train_batch_size 2 --nproc_per_node 2 --master_port 0", two), 0)
        << read_file(two + ".log");
    EXPECT_LE(max_abs_diff(one + "/checkpoint-2/model.safetensors", two + "/checkpoint-2/model.safetensors"), kTol) << loss;
    const auto h = history(two + "/checkpoint-2");
    expect_same_metrics(history(one + "/checkpoint-2"), h);
    EXPECT_GT(h[0]["kl"].get<double>() + h[1]["kl"].get<double>(), 0.0) << loss;
  }
}

// ZeRO-1 changes where the AdamW moments live, never the weights.
TEST(DataParallel, OptimizerShardingGivesTheSameWeights) {
  const std::string plain = world().root + "/grpo_unsharded", sharded = world().root + "/grpo_sharded";
  const std::string args = kGrpo + " --max_steps 3 --per_device_train_batch_size 2 --weight_decay 0.1 --nproc_per_node 2 --master_port 0";
  ASSERT_EQ(run_refract("grpo" + common(plain) + args, plain), 0) << read_file(plain + ".log");
  ASSERT_EQ(run_refract("grpo" + common(sharded) + args + " --optimizer_sharding", sharded), 0) << read_file(sharded + ".log");
  EXPECT_EQ(max_abs_diff(plain + "/checkpoint-3/model.safetensors", sharded + "/checkpoint-3/model.safetensors"), 0.0);
  expect_same_metrics(history(plain + "/checkpoint-3"), history(sharded + "/checkpoint-3"));
  // The checkpoint holds every parameter's state: its optimizer.pt is as large as the unsharded one.
  EXPECT_EQ(fs::file_size(plain + "/checkpoint-3/optimizer.pt") / 1000,
            fs::file_size(sharded + "/checkpoint-3/optimizer.pt") / 1000);
}

// A checkpoint resumes with another world size: 2 ranks (sharded optimizer) -> 1, and 1 -> 2,
// each equal to the uninterrupted single-process run.
TEST(DataParallel, ResumeWithADifferentWorldSize) {
  const std::string ref = world().root + "/resume_ref", a = world().root + "/resume_2to1", b = world().root + "/resume_1to2";
  const std::string one = " --per_device_train_batch_size 4", two = " --per_device_train_batch_size 2 --nproc_per_node 2 --master_port 0";
  const std::string steps = kEps + " --weight_decay 0.1 --max_steps 4";
  ASSERT_EQ(run_refract("sft" + common(ref) + steps + one, ref), 0) << read_file(ref + ".log");
  // 2 -> 1: the first two steps on two ranks with optimizer_sharding (stop after step 2).
  ASSERT_EQ(run_refract("sft" + common(a) + kEps + " --weight_decay 0.1 --max_steps 2 --optimizer_sharding" + two, a), 0)
      << read_file(a + ".log");
  ASSERT_EQ(run_refract("sft" + common(a) + steps + one + " --resume_from_checkpoint true", a), 0) << read_file(a + ".log");
  // 1 -> 2
  ASSERT_EQ(run_refract("sft" + common(b) + kEps + " --weight_decay 0.1 --max_steps 2" + one, b), 0) << read_file(b + ".log");
  ASSERT_EQ(run_refract("sft" + common(b) + steps + two + " --optimizer_sharding --resume_from_checkpoint true", b), 0)
      << read_file(b + ".log");
  for (const auto& d : {a, b}) {
    EXPECT_LE(max_abs_diff(ref + "/checkpoint-4/model.safetensors", d + "/checkpoint-4/model.safetensors"), kTol) << d;
    expect_same_metrics(history(ref + "/checkpoint-4"), history(d + "/checkpoint-4"));
  }
}

// A rank killed with SIGKILL (processes started by hand with the torchrun variables): the
// survivor fails with a clear error well within ddp_timeout, and the newest checkpoint on disk
// is complete and loadable.
TEST(DataParallel, KilledRankStopsTheOthersAndLeavesCheckpointsIntact) {
  const std::string out = world().root + "/killed";
  const int port = distributed::pick_free_port();
  const std::string args = "sft" + common(out, "1", "60") + " --max_steps 100000 --per_device_train_batch_size 2";
  const pid_t r0 = spawn_rank(0, port, args, out + ".rank0.log");
  const pid_t r1 = spawn_rank(1, port, args, out + ".rank1.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (refract::train::list_checkpoints(out).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(r0, nullptr, WNOHANG) == r0) break;  // failed early: the log says why
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_GE(refract::train::list_checkpoints(out).size(), 2u) << read_file(out + ".rank0.log");
  ASSERT_EQ(::kill(r1, SIGKILL), 0);
  EXPECT_EQ(wait_for(r1, 30), 128 + SIGKILL);
  const int code = wait_for(r0, 60 + 30);  // ddp_timeout + slack: never a hang
  if (code < 0) ::kill(r0, SIGKILL), wait_for(r0, 10);
  EXPECT_GT(code, 0) << read_file(out + ".rank0.log");
  const std::string log = read_file(out + ".rank0.log");
  EXPECT_NE(log.find("a peer exited or did not answer"), std::string::npos) << log;
  const std::string last = refract::train::latest_checkpoint(out);
  ASSERT_FALSE(last.empty());
  EXPECT_NO_THROW(history(last));
  EXPECT_FALSE(io::load_tensors(last + "/model.safetensors").empty());
  EXPECT_TRUE(fs::exists(last + "/optimizer.pt"));
}

// The built-in launcher: a worker killed with SIGKILL makes the launcher stop the other and
// exit non-zero.
TEST(DataParallel, LauncherStopsTheJobWhenAWorkerDies) {
  const std::string out = world().root + "/launcher_kill";
  const std::string args = "sft" + common(out, "0") + " --max_steps 100000 --per_device_train_batch_size 2 --nproc_per_node 2 --master_port 0";
  const std::string sh = "exec " + std::string(REFRACT_BINARY) + " " + args + " > " + out + ".log 2>&1";
  const char* argv[] = {"/bin/sh", "-c", sh.c_str(), nullptr};
  pid_t launcher = -1;
  ASSERT_EQ(::posix_spawn(&launcher, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  // Wait for the second logged step, then kill rank 1 (its pid is in the launcher's first line).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  std::string log;
  while (std::chrono::steady_clock::now() < deadline) {
    log = fs::exists(out + ".log") ? read_file(out + ".log") : "";
    if (log.find("step 2/") != std::string::npos || ::waitpid(launcher, nullptr, WNOHANG) == launcher) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto at = log.find("workers (pids ");
  ASSERT_NE(at, std::string::npos) << log;
  long pid0 = 0, pid1 = 0;
  ASSERT_EQ(std::sscanf(log.c_str() + at, "workers (pids %ld %ld)", &pid0, &pid1), 2) << log;
  ASSERT_EQ(::kill(static_cast<pid_t>(pid1), SIGKILL), 0);
  const int code = wait_for(launcher, 120);
  if (code < 0) ::kill(launcher, SIGKILL), wait_for(launcher, 10);
  // Rank 1's SIGKILL, or rank 0's error exit if the launcher saw it first.
  EXPECT_GT(code, 0) << read_file(out + ".log");
  EXPECT_NE(::kill(static_cast<pid_t>(pid0), 0), 0) << "rank 0 still runs";
  EXPECT_NE(read_file(out + ".log").find("rank 1 (pid " + std::to_string(pid1) + ") was killed by signal 9"),
            std::string::npos)
      << read_file(out + ".log");
}
