// Benchmark tables: a data-config YAML with several datasets is evaluated dataset by dataset in
// one `refract eval` run (one row each in eval.md / eval.json), each row equal to evaluating
// that dataset alone; --compare prints the differences with another run's eval.json.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "commands/eval.h"
#include "common/atomic_file.h"
#include "data/shapes/synth.h"
#include "temp_dir.h"
#include "test_device.h"

namespace fs = std::filesystem;
using namespace refract;

namespace {

struct TableWorld {
  std::string root, yaml, rec_in, rec_ood, count;
};

const TableWorld& table_world() {
  static const refract::testing::TempDir dir("eval_tables");  // removed at process exit
  static const TableWorld w = [] {
    TableWorld w;
    w.root = dir.path();
    auto synth = [&](const std::string& task, const std::string& split, int64_t seed) {
      data::shapes::SynthConfig sc;
      sc.task = task;
      sc.split = split;
      sc.num_samples = 8;
      sc.seed = seed;
      sc.output = w.root + "/data";
      sc.num_workers = 1;
      return data::shapes::synthesize(sc).jsonl_path;
    };
    w.rec_in = synth("rec", "in_domain", 21);
    w.rec_ood = synth("rec", "ood_combo", 22);
    w.count = synth("count", "in_domain", 23);
    w.yaml = w.root + "/data/bench.yaml";
    write_file_atomic(w.yaml,
                      "datasets:\n"
                      "  - json_path: rec_in_domain.jsonl\n"
                      "  - json_path: rec_ood_combo.jsonl\n"
                      "    sampling_strategy: first:5\n"
                      "  - json_path: count_in_domain.jsonl\n");
    return w;
  }();
  return w;
}

commands::EvalConfig config(const std::string& out) {
  commands::EvalConfig c;
  c.model_name_or_path = std::string(REFRACT_SOURCE_DIR) + "/assets/demo_warm_start";
  c.device = refract::testing::test_device_name();
  c.data.question_template = "none";
  c.per_device_eval_batch_size = 8;
  c.max_new_tokens = 48;
  c.threads = 2;
  c.output_dir = out;
  return c;
}

}  // namespace

TEST(EvalTables, OneRowPerDatasetEachAsIfEvaluatedAlone) {
  const auto& w = table_world();
  commands::EvalConfig c = config(w.root + "/bench");
  c.data.dataset_name = w.yaml;
  c.data.image_root = w.root + "/data";  // data-config entries join image paths to image_root (VLM-R1)
  const nlohmann::json r = commands::run_eval(c);

  ASSERT_EQ(r["datasets"].size(), 3u);
  const auto& rows = r["datasets"];
  EXPECT_EQ(rows[0]["name"], "rec_in_domain");
  EXPECT_EQ(rows[1]["name"], "rec_ood_combo");
  EXPECT_EQ(rows[2]["name"], "count_in_domain");
  EXPECT_EQ(rows[0]["task"], "rec");
  EXPECT_EQ(rows[2]["task"], "count");
  EXPECT_EQ(rows[0]["num_samples"], 8);
  EXPECT_EQ(rows[1]["num_samples"], 5);  // the entry's sampling_strategy first:5
  EXPECT_EQ(r["model"], c.model_name_or_path);
  EXPECT_TRUE(r["adapter"].is_null());
  EXPECT_EQ(r["settings"]["max_new_tokens"], 48);
  EXPECT_GT(r["seconds"].get<double>(), 0.0);
  for (const auto& row : rows) {
    EXPECT_GT(row["seconds"].get<double>(), 0.0);
    EXPECT_TRUE(fs::exists(c.output_dir + "/" + row["name"].get<std::string>() + "/predictions.jsonl"));
    EXPECT_TRUE(fs::exists(c.output_dir + "/" + row["name"].get<std::string>() + "/eval.json"));
  }
  EXPECT_EQ(r["table"]["count_in_domain"]["accuracy"], rows[2]["summary"]["accuracy"]);

  // The Markdown table: a header with the union of the metrics, one line per dataset.
  const std::string md = read_file(c.output_dir + "/eval.md");
  EXPECT_NE(md.find("| dataset | task | samples | accuracy |"), std::string::npos) << md;
  EXPECT_NE(md.find("| rec_ood_combo | rec | 5 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| count_in_domain | count | 8 |"), std::string::npos) << md;
  EXPECT_NE(md.find("mae"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(read_file(c.output_dir + "/eval.json"))["datasets"], rows);

  // Each row equals the evaluation of that dataset on its own.
  commands::EvalConfig alone = config(w.root + "/alone");
  alone.data.data_file_paths = w.rec_in;
  const nlohmann::json a = commands::run_eval(alone);
  EXPECT_EQ(a["summary"], rows[0]["summary"]);
  EXPECT_EQ(read_file(alone.output_dir + "/predictions.jsonl"),
            read_file(c.output_dir + "/rec_in_domain/predictions.jsonl"));
}

TEST(EvalTables, CompareGivesThisMinusOtherPerDatasetAndMetric) {
  const nlohmann::json here = nlohmann::json::parse(R"({"datasets": [
      {"name": "refcoco_val", "task": "rec", "summary": {"n": 10, "accuracy": 0.75, "mean_iou": 0.6}},
      {"name": "lisa_test", "task": "rec", "summary": {"n": 4, "accuracy": 0.5}}]})");
  // An older single-dataset eval.json (no "datasets" list) counts as one dataset named by
  // its "dataset" field.
  const nlohmann::json other = nlohmann::json::parse(R"({"dataset": "refcoco_val", "task": "rec",
      "summary": {"n": 10, "accuracy": 0.5, "mean_iou": 0.65, "center_accuracy": 0.9}})");
  const nlohmann::json cmp = commands::compare_evals(here, other);
  ASSERT_EQ(cmp["rows"].size(), 2u);  // accuracy and mean_iou: the metrics both have
  EXPECT_EQ(cmp["rows"][0]["metric"], "accuracy");
  EXPECT_DOUBLE_EQ(cmp["rows"][0]["diff"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(cmp["rows"][1]["diff"].get<double>(), 0.6 - 0.65);
  EXPECT_EQ(cmp["only_here"], nlohmann::json::array({"lisa_test"}));
  EXPECT_TRUE(cmp["only_there"].empty());
  const std::string md = commands::compare_markdown(cmp, "sft/eval.json");
  EXPECT_NE(md.find("| refcoco_val | accuracy | 0.7500 | 0.5000 | +0.2500 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| refcoco_val | mean_iou | 0.6000 | 0.6500 | -0.0500 |"), std::string::npos) << md;
  EXPECT_NE(md.find("only in this run: lisa_test"), std::string::npos) << md;
}

// The command line: --compare against a run of the same data prints a zero difference for
// every metric (same model, greedy), and a file that is not an eval.json is refused before
// any model is opened.
TEST(EvalTables, CommandLineCompare) {
  const auto& w = table_world();
  const std::string base = std::string(REFRACT_BINARY) + " eval --model " + REFRACT_SOURCE_DIR +
                           "/assets/demo_warm_start --question_template none --max_new_tokens 48 --threads 2" +
                           refract::testing::device_flag() +
                           " --data_file_paths " + w.count;
  const std::string first = w.root + "/cli_a", second = w.root + "/cli_b";
  ASSERT_EQ(std::system((base + " --output_dir " + first + " > " + first + ".log 2>&1").c_str()), 0);
  ASSERT_EQ(std::system((base + " --output_dir " + second + " --compare " + first + "/eval.json > " + second +
                         ".log 2>&1").c_str()),
            0)
      << read_file(second + ".log");
  const std::string log = read_file(second + ".log");
  EXPECT_NE(log.find("| count_in_domain | accuracy |"), std::string::npos) << log;
  EXPECT_NE(log.find("+0.0000 |"), std::string::npos) << log;  // this - other = 0
  const auto e = nlohmann::json::parse(read_file(second + "/eval.json"));
  for (const auto& row : e["compare"]["rows"]) EXPECT_EQ(row["diff"].get<double>(), 0.0) << row.dump();
  write_file_atomic(w.root + "/not_eval.json", "[1, 2]");
  const std::string bad = w.root + "/cli_bad";
  EXPECT_NE(std::system((base + " --output_dir " + bad + " --compare " + w.root + "/not_eval.json > " + bad +
                         ".log 2>&1").c_str()),
            0);
  EXPECT_NE(read_file(bad + ".log").find("not_eval.json: not an eval.json"), std::string::npos)
      << read_file(bad + ".log");
  EXPECT_FALSE(fs::exists(bad + "/eval.json"));
}
