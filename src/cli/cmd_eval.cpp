// `refract eval`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract eval is not implemented yet"; });
}
}  // namespace refract::cli
