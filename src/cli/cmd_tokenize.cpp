// `refract tokenize`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract tokenize is not implemented yet"; });
}
}  // namespace refract::cli
