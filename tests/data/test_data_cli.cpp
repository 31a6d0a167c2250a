// End to end: `refract data synth` for all five tasks, then `refract data check` on them, and
// on a broken file (exit codes and the printed report). Also: every task loads through the
// JSONL loader with the ground truth the generator wrote.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "data/load.h"
#include "data/shapes/synth.h"
#include "data/validate.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace refract;

namespace {

struct CliRun {
  int code;
  std::string out;
};

CliRun run(const std::string& args) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string fixture(const std::string& name) { return std::string(REFRACT_FIXTURES_DIR) + "/data/" + name; }

}  // namespace

TEST(DataCli, SynthAllTasksThenCheck) {
  const refract::testing::TempDir tmp("data_cli");
  const fs::path dir = tmp.path();
  std::string files;
  for (const char* task : {"rec", "det", "count", "ocr", "cls"}) {
    CliRun r = run(std::string("data synth --task ") + task + " --num_samples 12 --seed 3 --output " + dir.string());
    ASSERT_EQ(r.code, 0) << r.out;
    files += (files.empty() ? "" : ":") + (dir / (std::string(task) + "_in_domain.jsonl")).string();
  }
  CliRun r = run("data synth --task rec --split relational --num_samples 12 --seed 3 --output " + dir.string());
  ASSERT_EQ(r.code, 0) << r.out;
  files += ":" + (dir / "rec_relational.jsonl").string() + ":" + (dir / "det_in_domain_coco.json").string();
  r = run("data check --data_file_paths " + files + " --tokenizer_path " + REFRACT_FIXTURES_DIR +
          "/tokenizer/tokenizer.json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("total: read 84, usable 84, rejected 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rec_in_domain.jsonl: read 12, usable 12, rejected 0"), std::string::npos) << r.out;

  // The library view: each task's ground truth survives the round trip through the loader.
  data::shapes::SynthConfig sc;
  sc.seed = 3;
  for (const char* task : {"rec", "det", "count", "ocr", "cls"}) {
    sc.task = task;
    data::DataConfig c;
    c.data_file_paths = (dir / (std::string(task) + "_in_domain.jsonl")).string();
    data::Dataset d = data::load_dataset(c);
    ASSERT_EQ(d.samples.size(), 12u);
    for (int64_t i = 0; i < 12; ++i) {
      const auto want = data::shapes::make_sample(sc, i);
      const data::Sample& s = d.samples[static_cast<size_t>(i)];
      EXPECT_EQ(s.solution, want.solution) << task << " " << i;
      EXPECT_EQ(s.task, task);
      EXPECT_EQ(s.response, want.answer);
      ASSERT_EQ(s.images.size(), 1u);
      EXPECT_TRUE(fs::exists(s.images[0].path)) << s.images[0].path;
    }
  }
}

TEST(DataCli, CheckReportsBrokenFilesAndExitCodes) {
  const std::string args = "data check --data_file_paths " + fixture("broken.jsonl") + " --image_folders " + fixture("images");
  CliRun r = run(args);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("read 10, usable 1, rejected 9"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fixture("broken.jsonl") + ":7: degenerate box [40, 30, 40, 60]"), std::string::npos) << r.out;
  r = run(args + " --on_bad_sample skip");
  EXPECT_EQ(r.code, 0) << r.out;
  r = run("data check --dataset_name " + fixture("data_config.yaml") + " --image_root " + fixture("images"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("missing field 'problem'"), std::string::npos) << r.out;
  r = run("data check --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--on_bad_sample"), std::string::npos);
}
