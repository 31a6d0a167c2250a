// `refract env`: version, libtorch, CUDA, devices, BLAS, CPU ISA and threads, as text or JSON
// (paste it into a bug report).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "commands/env.h"
#include "common/data_dir.h"
#include "refract_build_info.h"

namespace refract::cli {

void add_env_command(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "env", "Print what refract runs on: version and git revision, libtorch, CUDA / cuDNN / NCCL, "
             "visible devices and their memory, BLAS, CPU ISA, threads");
  cmd->add_flag("--json", *json, "one JSON object instead of text");
  cmd->callback([json] {
    nlohmann::ordered_json env = {{"refract",
                           {{"version", REFRACT_VERSION},
                            {"git_revision", REFRACT_GIT_REVISION},
                            {"built_against_libtorch", REFRACT_TORCH_VERSION},
                            {"data_dir", find_data_dir(this_process_data_dir_search()).dir}}}};
    env.update(commands::collect_environment());
    const std::string text = *json ? env.dump(2) + "\n" : commands::format_environment(env);
    std::fputs(text.c_str(), stdout);
  });
}

}  // namespace refract::cli
