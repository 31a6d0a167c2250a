// `refract preprocess`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_preprocess_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("preprocess", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract preprocess is not implemented yet"; });
}
}  // namespace refract::cli
