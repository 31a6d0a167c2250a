// `refract model`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract model is not implemented yet"; });
}
}  // namespace refract::cli
