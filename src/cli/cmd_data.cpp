// `refract data`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract data is not implemented yet"; });
}
}  // namespace refract::cli
