// refract: reinforcement fine-tuning of vision-language models with verifiable rewards.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/command.h"
#include "common/check.h"

int main(int argc, char** argv) {
  CLI::App app{
      "refract: GRPO / SFT for Qwen2.5-VL style vision-language models with verifiable "
      "rewards, on libtorch."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "refract 0.1.0");
  using namespace refract::cli;
  add_demo_command(app);
  add_grpo_command(app);
  add_sft_command(app);
  add_eval_command(app);
  add_score_command(app);
  add_rewards_command(app);
  add_infer_command(app);
  add_serve_command(app);
  add_export_command(app);
  add_data_command(app);
  add_model_command(app);
  add_tokenize_command(app);
  add_preprocess_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const refract::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
