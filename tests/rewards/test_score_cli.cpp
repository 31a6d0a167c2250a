// End to end: the `refract score` binary on small files, checked against pycocotools golden
// stats (det) and hand-computed summaries (rec, count, ocr, cls).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliResult {
  int status;
  std::string out;
};

CliResult run(const std::string& args) {
  const std::string cmd = std::string(REFRACT_BINARY) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WEXITSTATUS(st), out};
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

}  // namespace

TEST(ScoreCli, DetMatchesPycocotools) {
  const fs::path fixture = fs::path(REFRACT_FIXTURES_DIR) / "cocoeval" / "public_32_edge_crowd_a.json";
  std::ifstream in(fixture);
  json j = json::parse(in);
  const refract::testing::TempDir tmp("score");
  const fs::path d = tmp.path();
  write(d / "gt.json", j["gt"].dump());
  write(d / "dt.json", j["dt"].dump());
  const CliResult r = run("score det --gt " + (d / "gt.json").string() + " --predictions " +
                    (d / "dt.json").string() + " --output " + (d / "out.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  const json got = json::parse(r.out);
  for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(got["stats"][i].get<double>(), j["stats"][i].get<double>(), 1e-12);
  for (auto& [k, v] : j["per_category_ap"].items())
    EXPECT_NEAR(got["per_category_ap"][k].get<double>(), v.get<double>(), 1e-12);
  EXPECT_TRUE(fs::exists(d / "out.json"));
}

TEST(ScoreCli, RecCountOcrCls) {
  const refract::testing::TempDir tmp("score");
  const fs::path d = tmp.path();
  // rec: sample 1 exact (IoU 1), sample 2 IoU 1/3, sample 3 missing prediction (IoU 0).
  write(d / "rec_refs.jsonl",
        "{\"id\": 1, \"solution\": [0, 0, 10, 10]}\n{\"id\": 2, \"solution\": [5, 0, 15, 10]}\n"
        "{\"id\": 3, \"solution\": [0, 0, 1, 1]}\n");
  write(d / "rec_preds.jsonl",
        "{\"id\": 1, \"prediction\": \"<think>x</think><answer>{\\\"bbox_2d\\\": [0, 0, 10, 10]}</answer>\"}\n"
        "{\"id\": 2, \"prediction\": \"<answer>[0, 0, 10, 10]</answer>\"}\n");
  // Without image sizes, absolute_resized (the default) cannot map boxes: an error, not a guess.
  CliResult r = run("score rec --predictions " + (d / "rec_preds.jsonl").string() + " --references " +
              (d / "rec_refs.jsonl").string() + " --output " + (d / "rec.json").string());
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(d / "rec.json"));
  r = run("score rec --coords absolute --predictions " + (d / "rec_preds.jsonl").string() + " --references " +
          (d / "rec_refs.jsonl").string() + " --output " + (d / "rec.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  json s = json::parse(r.out);
  EXPECT_NEAR(s["accuracy"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_NEAR(s["mean_iou"].get<double>(), (1.0 + 1.0 / 3) / 3, 1e-12);
  std::ifstream full(d / "rec.json");
  json all = json::parse(full);
  EXPECT_EQ(all["missing_predictions"], 1);
  EXPECT_EQ(all["samples"].size(), 3u);

  write(d / "c_refs.jsonl", "{\"id\": \"a\", \"solution\": 3}\n{\"id\": \"b\", \"solution\": \"5\"}\n");
  write(d / "c_preds.jsonl", "{\"id\": \"a\", \"prediction\": \"<answer>3</answer>\"}\n{\"id\": \"b\", \"prediction\": \"7\"}\n");
  r = run("score count --predictions " + (d / "c_preds.jsonl").string() + " --references " + (d / "c_refs.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.out;
  s = json::parse(r.out);
  EXPECT_DOUBLE_EQ(s["accuracy"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s["mae"].get<double>(), 1.0);

  write(d / "o_refs.jsonl", "{\"id\": 1, \"solution\": \"sitting\"}\n");
  write(d / "o_preds.jsonl", "{\"id\": 1, \"prediction\": \"kitten\"}\n");
  r = run("score ocr --predictions " + (d / "o_preds.jsonl").string() + " --references " + (d / "o_refs.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.out;
  s = json::parse(r.out);
  EXPECT_DOUBLE_EQ(s["cer"].get<double>(), 3.0 / 7);

  write(d / "k_refs.jsonl", "{\"id\": 1, \"solution\": \"golden retriever\"}\n{\"id\": 2, \"solution\": \"cat\"}\n");
  write(d / "k_preds.jsonl", "{\"id\": 1, \"prediction\": \"<answer>Golden_Retriever</answer>\"}\n{\"id\": 2, \"prediction\": \"dog\"}\n");
  r = run("score cls --predictions " + (d / "k_preds.jsonl").string() + " --references " + (d / "k_refs.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.out;
  s = json::parse(r.out);
  EXPECT_DOUBLE_EQ(s["accuracy"].get<double>(), 0.5);
}

TEST(ScoreCli, ErrorsAreReported) {
  EXPECT_NE(run("score det --predictions /nonexistent.json").status, 0);  // no --gt
  EXPECT_NE(run("score bogus --predictions x").status, 0);
  EXPECT_EQ(run("score --help").status, 0);
}

TEST(ScoreCli, RecAbsoluteResizedMapsThroughSmartResize) {
  const refract::testing::TempDir tmp("score");
  const fs::path d = tmp.path();
  // 1000 x 500 -> smart_resize 1008 x 504 (round(1000/28) = 36, round(500/28) = 18 cells), so
  // the full resized frame maps back to the full original image: IoU exactly 1. Read as
  // original pixels it would be 1000*500 / (1008*504).
  write(d / "refs.jsonl", "{\"id\": \"a\", \"solution\": [0, 0, 1000, 500], \"width\": 1000, \"height\": 500}\n");
  write(d / "preds.jsonl", "{\"id\": \"a\", \"prediction\": \"<answer>[0, 0, 1008, 504]</answer>\"}\n");
  CliResult r = run("score rec --predictions " + (d / "preds.jsonl").string() + " --references " +
                    (d / "refs.jsonl").string() + " --output " + (d / "out.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NEAR(json::parse(r.out)["mean_iou"].get<double>(), 1.0, 1e-12);
  r = run("score rec --coords absolute --predictions " + (d / "preds.jsonl").string() + " --references " +
          (d / "refs.jsonl").string() + " --output " + (d / "out.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NEAR(json::parse(r.out)["mean_iou"].get<double>(), 1000.0 * 500 / (1008.0 * 504), 1e-12);
}
