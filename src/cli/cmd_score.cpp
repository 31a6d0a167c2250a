// `refract score`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("score", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract score is not implemented yet"; });
}
}  // namespace refract::cli
