// `refract infer`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_infer_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("infer", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract infer is not implemented yet"; });
}
}  // namespace refract::cli
