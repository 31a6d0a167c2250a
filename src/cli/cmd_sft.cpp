// `refract sft`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/check.h"

namespace refract::cli {
void add_sft_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("sft", "(not implemented yet)");
  cmd->callback([] { REFRACT_FAIL() << "refract sft is not implemented yet"; });
}
}  // namespace refract::cli
