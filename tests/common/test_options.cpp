#include "common/options.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>

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

}  // namespace
}  // namespace refract
