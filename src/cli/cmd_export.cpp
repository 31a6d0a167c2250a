// `refract export`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract export is not implemented yet"; });
}
}  // namespace refract::cli
