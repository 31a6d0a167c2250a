// `refract grpo`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_grpo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("grpo", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract grpo is not implemented yet"; });
}
}  // namespace refract::cli
