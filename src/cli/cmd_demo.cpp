// `refract demo`: GRPO vs continued SFT from an SFT warm start on the shapes world.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/demo.h"

namespace refract::cli {

void add_demo_command(CLI::App& app) {
  struct State {
    commands::DemoConfig config;
    Options options;
  };
  auto st = std::make_shared<State>();
  auto* cmd = app.add_subcommand(
      "demo",
      "Shapes-world REC: from an SFT warm start run GRPO (iou + format rewards) and SFT "
      "continued for the same wall time, evaluate all three greedily on held-out in-domain and "
      "out-of-domain samples, print a table and write <output>/summary.json");
  commands::declare(st->options, st->config);
  st->options.add_to(*cmd);
  cmd->callback([st] {
    st->options.parse();
    commands::run_demo(st->config);
  });
}

}  // namespace refract::cli
