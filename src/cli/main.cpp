// refract: reinforcement fine-tuning of vision-language models with verifiable rewards.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli/command.h"
#include "common/check.h"
#include "common/data_dir.h"
#include "refract_build_info.h"  // generated: REFRACT_VERSION, REFRACT_GIT_REVISION, REFRACT_TORCH_VERSION

namespace {

// What was built, from which revision, against which libtorch, and the data directory this copy
// uses (where a missing demo warm start is looked for).
std::string version_text() {
  std::string s =
      "refract " REFRACT_VERSION " (git " REFRACT_GIT_REVISION ")\nlibtorch " REFRACT_TORCH_VERSION "\n";
  const refract::DataDirResult r = refract::find_data_dir(refract::this_process_data_dir_search());
  if (!r.dir.empty()) return s + "data directory " + r.dir;
  s += "data directory not found; looked at:";
  for (const auto& place : r.looked) s += "\n  " + place;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "refract: GRPO / SFT for Qwen2.5-VL style vision-language models with verifiable "
      "rewards, on libtorch."};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text,
                       "Print the version, git revision, libtorch version and data directory");
  using namespace refract::cli;
  add_demo_command(app);
  add_grpo_command(app);
  add_sft_command(app);
  add_eval_command(app);
  add_score_command(app);
  add_rewards_command(app);
  add_infer_command(app);
  add_serve_command(app);
  add_dashboard_command(app);
  add_export_command(app);
  add_data_command(app);
  add_model_command(app);
  add_tokenize_command(app);
  add_preprocess_command(app);
  add_env_command(app);
  add_completion_command(app);
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
