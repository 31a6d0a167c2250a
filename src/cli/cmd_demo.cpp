// `refract demo`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract demo is not implemented yet"; });
}
}  // namespace refract::cli
