#include "common/options.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/check.h"

namespace refract {
namespace {

struct Demo {
  int64_t num_generations = 8;
  double beta = 0.0;
  bool use_peft = false;
  std::string loss_type = "dapo";
  std::vector<std::string> reward_funcs;
  std::vector<double> reward_weights;
};

void declare(Options& o, Demo& d) {
  o.add("num_generations", &d.num_generations, "G");
  o.add("beta", &d.beta, "KL");
  o.add("use_peft", &d.use_peft, "LoRA");
  o.add("loss_type", &d.loss_type, "loss").choices({"grpo", "bnpo", "dr_grpo", "dapo"});
  o.add("reward_funcs", &d.reward_funcs, "rewards");
  o.add("reward_weights", &d.reward_weights, "weights");
}

TEST(Options, YamlSetsFields) {
  Demo d;
  Options o;
  declare(o, d);
  o.load_yaml_string("num_generations: 4\nbeta: 0.04\nuse_peft: true\nloss_type: grpo\n"
                     "reward_funcs: [iou, format]\nreward_weights: [1, 0.5]\n",
                     "cfg.yaml");
  EXPECT_EQ(d.num_generations, 4);
  EXPECT_DOUBLE_EQ(d.beta, 0.04);
  EXPECT_TRUE(d.use_peft);
  EXPECT_EQ(d.loss_type, "grpo");
  EXPECT_EQ(d.reward_funcs, (std::vector<std::string>{"iou", "format"}));
  EXPECT_EQ(d.reward_weights, (std::vector<double>{1, 0.5}));
}

TEST(Options, UnknownKeyNamesKeyFileAndLine) {
  Demo d;
  Options o;
  declare(o, d);
  try {
    o.load_yaml_string("beta: 0.1\nnum_generation: 4\n", "cfg.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cfg.yaml:2"), std::string::npos) << m;
    EXPECT_NE(m.find("num_generation"), std::string::npos) << m;
  }
}

TEST(Options, BadValueNamesKey) {
  Demo d;
  Options o;
  declare(o, d);
  try {
    o.load_yaml_string("num_generations: many\n", "cfg.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_generations"), std::string::npos);
  }
  EXPECT_THROW(o.load_yaml_string("loss_type: ppo\n", "cfg.yaml"), Error);
  EXPECT_THROW(o.load_yaml_string("use_peft: maybe\n", "cfg.yaml"), Error);
}

TEST(Options, IntOutOfRangeIsABadValueNotATruncation) {
  int workers = 1;
  Options o;
  o.add("num_workers", &workers, "threads");
  try {
    o.load_yaml_string("num_workers: 4294967297\n", "cfg.yaml");  // 2^32 + 1 would truncate to 1
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_workers"), std::string::npos) << e.what();
  }
  EXPECT_EQ(workers, 1);
  o.load_yaml_string("num_workers: -3\n", "cfg.yaml");
  EXPECT_EQ(workers, -3);
}

TEST(Options, FlagsOverrideYaml) {
  Demo d;
  Options o;
  declare(o, d);
  CLI::App app;
  o.add_to(app);
  std::string path = ::testing::TempDir() + "/opts.yaml";
  {
    std::ofstream f(path);
    f << "num_generations: 4\nbeta: 0.5\n";
  }
  std::vector<std::string> args = {"--reward_funcs", "iou,format", "--beta", "0.25",
                                   "--use_peft", "--config", path};
  std::vector<std::string> rev(args.rbegin(), args.rend());
  app.parse(rev);
  o.parse();
  EXPECT_EQ(d.num_generations, 4);  // from YAML
  EXPECT_DOUBLE_EQ(d.beta, 0.25);   // flag wins
  EXPECT_TRUE(d.use_peft);
  EXPECT_EQ(d.reward_funcs, (std::vector<std::string>{"iou", "format"}));
}

TEST(Options, BadFlagValueNamesKey) {
  Demo d;
  Options o;
  declare(o, d);
  CLI::App app;
  o.add_to(app);
  std::vector<std::string> rev = {"x", "--beta"};
  app.parse(rev);
  try {
    o.parse();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--beta"), std::string::npos);
  }
}

// A mapping field (reward_kwargs): YAML mapping with typed scalars, flags merged key by key.
struct WithMap {
  std::vector<std::string> reward_funcs;
  nlohmann::json reward_kwargs = nlohmann::json::object();
};

void declare(Options& o, WithMap& w) {
  o.add("reward_funcs", &w.reward_funcs, "rewards");
  o.add("reward_kwargs", &w.reward_kwargs, "per-reward settings");
}

void parse_args(CLI::App& app, Options& o, std::vector<std::string> args) {
  std::vector<std::string> rev(args.rbegin(), args.rend());
  app.parse(rev);
  o.parse();
}

TEST(OptionsMapping, YamlMappingBecomesTypedJson) {
  WithMap w;
  Options o;
  declare(o, w);
  o.load_yaml_string(
      "reward_kwargs:\n"
      "  soft_overlong: {soft_punish_cache: 20, max_completion_len: 100}\n"
      "  iou:\n"
      "    iou_convention: vlm_r1\n"
      "    require_answer_tag: true\n"
      "    threshold: 0.5\n"
      "    label: '20'\n"
      "    nothing: ~\n"
      "    list: [1, a]\n",
      "cfg.yaml");
  const nlohmann::json want = {
      {"soft_overlong", {{"soft_punish_cache", 20}, {"max_completion_len", 100}}},
      {"iou",
       {{"iou_convention", "vlm_r1"},
        {"require_answer_tag", true},
        {"threshold", 0.5},
        {"label", "20"},
        {"nothing", nullptr},
        {"list", {1, "a"}}}}};
  EXPECT_EQ(w.reward_kwargs, want) << w.reward_kwargs.dump();
  EXPECT_TRUE(w.reward_kwargs["soft_overlong"]["soft_punish_cache"].is_number_integer());
  EXPECT_TRUE(w.reward_kwargs["iou"]["label"].is_string());
}

TEST(OptionsMapping, NotAMappingNamesKey) {
  WithMap w;
  Options o;
  declare(o, w);
  try {
    o.load_yaml_string("reward_kwargs: 3\n", "cfg.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cfg.yaml:1"), std::string::npos) << m;
    EXPECT_NE(m.find("reward_kwargs"), std::string::npos) << m;
    EXPECT_NE(m.find("mapping"), std::string::npos) << m;
  }
  EXPECT_THROW(o.load_yaml_string("reward_kwargs: [a, b]\n", "cfg.yaml"), Error);
  o.load_yaml_string("reward_kwargs:\n", "cfg.yaml");
  EXPECT_EQ(w.reward_kwargs, nlohmann::json::object());
}

TEST(OptionsMapping, FlagsInJsonAndDottedFormMergeIntoYaml) {
  WithMap w;
  Options o;
  declare(o, w);
  CLI::App app;
  o.add_to(app);
  const std::string path = ::testing::TempDir() + "/map.yaml";
  {
    std::ofstream f(path);
    f << "reward_kwargs: {soft_overlong: {soft_punish_cache: 20}, iou: {threshold: 0.7}}\n";
  }
  parse_args(app, o,
             {"--config", path, "--reward_kwargs", R"({"iou": {"iou_convention": "vlm_r1"}})",
              "--reward_kwargs", "soft_overlong.soft_punish_cache=30",
              "--reward_kwargs", "external:python3 r.py.timeout_seconds=5.5",
              "--reward_kwargs", "format.format_pattern=[a-z]+: .*", "--reward_kwargs",
              "iou.label='20'", "--reward_kwargs", "iou.require_answer_tag=true"});
  const nlohmann::json want = {
      {"soft_overlong", {{"soft_punish_cache", 30}}},
      {"iou", {{"threshold", 0.7}, {"iou_convention", "vlm_r1"}, {"label", "20"},
               {"require_answer_tag", true}}},
      {"external:python3 r.py", {{"timeout_seconds", 5.5}}},
      {"format", {{"format_pattern", "[a-z]+: .*"}}}};
  EXPECT_EQ(w.reward_kwargs, want) << w.reward_kwargs.dump();
}

TEST(OptionsMapping, BadFlagValueNamesKey) {
  WithMap w;
  Options o;
  declare(o, w);
  CLI::App app;
  o.add_to(app);
  try {
    parse_args(app, o, {"--reward_kwargs", "iou_convention=vlm_r1"});  // no reward name
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--reward_kwargs"), std::string::npos) << m;
    EXPECT_NE(m.find("iou_convention=vlm_r1"), std::string::npos) << m;
  }
  EXPECT_THROW(o.set("reward_kwargs", "{not: [closed"), Error);
  EXPECT_THROW(o.set("reward_kwargs", "[1, 2]"), Error);
}

TEST(OptionsMapping, ToJsonAndToYamlRoundTrip) {
  WithMap w;
  Options o;
  declare(o, w);
  o.load_yaml_string(
      "reward_funcs: [iou, soft_overlong]\n"
      "reward_kwargs: {soft_overlong: {soft_punish_cache: 20}, iou: {iou_convention: vlm_r1, "
      "threshold: 0.1, word: 'true', num: '1e3', empty: '', flag: false, none: null, "
      "'a: b': {c: [1, 2.5]}}}\n",
      "cfg.yaml");
  const nlohmann::json before = o.to_json();
  EXPECT_EQ(before["reward_kwargs"], w.reward_kwargs);
  const std::string yaml = o.to_yaml();
  WithMap w2;
  Options o2;
  declare(o2, w2);
  o2.load_yaml_string(yaml, "saved.yaml");
  EXPECT_EQ(o2.to_json(), before) << yaml;
  EXPECT_TRUE(w2.reward_kwargs["iou"]["word"].is_string()) << yaml;
  EXPECT_TRUE(w2.reward_kwargs["iou"]["num"].is_string()) << yaml;
  EXPECT_EQ(w2.reward_kwargs["iou"]["threshold"].get<double>(), 0.1) << yaml;
}

// alias(): a second spelling of a key (model -> model_name_or_path).
struct WithAlias {
  std::string model_name_or_path;
  bool use_peft = false;
  int64_t steps = 0;
};

void declare(Options& o, WithAlias& w) {
  o.add("model_name_or_path", &w.model_name_or_path, "model directory").alias("model");
  o.add("use_peft", &w.use_peft, "LoRA").alias("peft");
  o.add("steps", &w.steps, "steps");
}

TEST(OptionsAlias, YamlAndFlagSpellingsSetTheSameField) {
  WithAlias w;
  Options o;
  declare(o, w);
  o.load_yaml_string("model: /m1\n", "cfg.yaml");
  EXPECT_EQ(w.model_name_or_path, "/m1");
  o.load_yaml_string("model_name_or_path: /m2\n", "cfg.yaml");
  EXPECT_EQ(w.model_name_or_path, "/m2");
  EXPECT_TRUE(o.has("model"));
  o.set("model", "/m3");
  EXPECT_EQ(w.model_name_or_path, "/m3");
  // Recorded under the one canonical name.
  EXPECT_TRUE(o.to_json().contains("model_name_or_path"));
  EXPECT_FALSE(o.to_json().contains("model"));

  WithAlias w2;
  Options o2;
  declare(o2, w2);
  CLI::App app;
  o2.add_to(app);
  const std::string path = ::testing::TempDir() + "/alias.yaml";
  {
    std::ofstream f(path);
    f << "model_name_or_path: /yaml\n";
  }
  parse_args(app, o2, {"--config", path, "--model", "/flag", "--peft"});
  EXPECT_EQ(w2.model_name_or_path, "/flag");  // a flag under the alias overrides the YAML key
  EXPECT_TRUE(w2.use_peft);
}

TEST(OptionsAlias, BothSpellingsAreAnError) {
  WithAlias w;
  Options o;
  declare(o, w);
  try {
    o.load_yaml_string("model_name_or_path: /a\nsteps: 2\nmodel: /b\n", "cfg.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cfg.yaml:3"), std::string::npos) << m;
    EXPECT_NE(m.find("'model'"), std::string::npos) << m;
    EXPECT_NE(m.find("'model_name_or_path' (line 1)"), std::string::npos) << m;
  }
  WithAlias w2;
  Options o2;
  declare(o2, w2);
  CLI::App app;
  o2.add_to(app);
  try {
    parse_args(app, o2, {"--model", "/a", "--model_name_or_path", "/b"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--model "), std::string::npos) << m;
    EXPECT_NE(m.find("--model_name_or_path"), std::string::npos) << m;
  }
}

TEST(OptionsAlias, ShownInHelpAndNotReusable) {
  WithAlias w;
  Options o;
  declare(o, w);
  CLI::App app;
  o.add_to(app);
  const std::string help = app.help();
  EXPECT_NE(help.find("(alias: --model)"), std::string::npos) << help;
  EXPECT_NE(help.find("(alias: --peft)"), std::string::npos) << help;
  EXPECT_THROW(o.add("model", &w.model_name_or_path, "again"), Error);
  EXPECT_THROW(o.alias("model_name_or_path"), Error);
}

struct Typed {
  int workers = 2;
  int64_t num_generations = 8;
  double learning_rate = 1e-6;
  float temperature = 0.9f;
  bool use_peft = false;
  std::string device = "cpu";
  std::string output_dir = "output";
  std::string loss_type = "dapo";
  std::vector<std::string> reward_funcs{"iou", "format"};
  std::vector<int64_t> steps{1, 2};
  std::vector<double> reward_weights;
  nlohmann::json reward_kwargs = nlohmann::json::object();
};

void declare(Options& o, Typed& t) {
  o.add("workers", &t.workers, "threads");
  o.add("num_generations", &t.num_generations, "G");
  o.add("learning_rate", &t.learning_rate, "peak lr");
  o.add("temperature", &t.temperature, "sampling temperature");
  o.add("use_peft", &t.use_peft, "LoRA");
  o.add("device", &t.device, "cpu | cuda");
  o.add("output_dir", &t.output_dir, "where checkpoints go").path();
  o.add("loss_type", &t.loss_type, "loss").choices({"grpo", "bnpo", "dr_grpo", "dapo"});
  o.add("reward_funcs", &t.reward_funcs, "rewards");
  o.add("steps", &t.steps, "steps");
  o.add("reward_weights", &t.reward_weights, "weights");
  o.add("reward_kwargs", &t.reward_kwargs, "per-reward settings");
}

TEST(OptionsHelp, ShowsEachKeysTypeAndDefault) {
  Typed t;
  Options o;
  declare(o, t);
  CLI::App app;
  o.add_to(app);
  const std::string help = app.help();
  for (const char* part :
       {"--config PATH", "--workers INT", "(default 2)", "--num_generations INT", "(default 8)",
        "--learning_rate FLOAT", "(default 1e-06)", "--temperature FLOAT", "--use_peft[=BOOL]",
        "(default false)", "--device TEXT", "(default \"cpu\")", "--output_dir PATH",
        "(default \"output\")", "--loss_type {grpo|bnpo|dr_grpo|dapo}", "(default \"dapo\")",
        "--reward_funcs LIST", "(default [\"iou\",\"format\"])", "--steps INT LIST",
        "(default [1,2])", "--reward_weights FLOAT LIST", "(default [])", "--reward_kwargs MAP",
        "(default {})"})
    EXPECT_NE(help.find(part), std::string::npos) << part << " not in:\n" << help;
  // CLI11's own rendering of string-read flags, which made numbers look like text.
  EXPECT_EQ(help.find("TEXT ..."), std::string::npos) << help;
  EXPECT_EQ(help.find("{true}"), std::string::npos) << help;
}

TEST(OptionsHelp, TypesDoNotChangeParsing) {
  Typed t;
  Options o;
  declare(o, t);
  CLI::App app;
  o.add_to(app);
  parse_args(app, o,
             {"--workers", "3", "--learning_rate", "2e-5", "--use_peft", "--loss_type", "grpo",
              "--steps", "4", "5", "--reward_weights", "1,0.5", "--reward_kwargs", "iou.iou_convention=vlm_r1"});
  EXPECT_EQ(t.workers, 3);
  EXPECT_DOUBLE_EQ(t.learning_rate, 2e-5);
  EXPECT_TRUE(t.use_peft);
  EXPECT_EQ(t.loss_type, "grpo");
  EXPECT_EQ(t.steps, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(t.reward_weights, (std::vector<double>{1, 0.5}));
  EXPECT_EQ(t.reward_kwargs["iou"]["iou_convention"], "vlm_r1");
  // A scalar still takes one value, and a bad count or value names the flag.
  Typed t2;
  Options o2;
  declare(o2, t2);
  CLI::App app2;
  o2.add_to(app2);
  try {
    parse_args(app2, o2, {"--workers", "3", "4"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--workers: expected one value, got 2"), std::string::npos) << e.what();
  }
}

TEST(OptionsHelp, ChoicesReadBackForCompletion) {
  Typed t;
  Options o;
  declare(o, t);
  CLI::App app;
  o.add_to(app);
  EXPECT_EQ(flag_choices(*app.get_option("--loss_type")),
            (std::vector<std::string>{"grpo", "bnpo", "dr_grpo", "dapo"}));
  EXPECT_TRUE(flag_choices(*app.get_option("--device")).empty());
  EXPECT_TRUE(flag_choices(*app.get_option("--reward_kwargs")).empty());
  EXPECT_THROW(o.add("threads", &t.workers, "threads").path(), Error);
}

}  // namespace
}  // namespace refract
