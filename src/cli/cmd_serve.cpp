// `refract serve`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract serve is not implemented yet"; });
}
}  // namespace refract::cli
