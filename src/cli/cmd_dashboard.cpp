// `refract dashboard`: a local web page over run directories (curves, sampled boxes on their
// images, evaluation hits and misses), or the same pictures as PNG files with --render.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "dashboard/dashboard.h"

namespace refract::cli {
namespace {
struct DashboardCommand {
  dashboard::DashboardSettings settings;
  Options options;
};
}  // namespace

void add_dashboard_command(CLI::App& app) {
  auto state = std::make_shared<DashboardCommand>();
  auto* cmd = app.add_subcommand(
      "dashboard",
      "Show runs in the browser: reward curves, the sampled boxes drawn on their images, evaluation hits and "
      "misses (read-only, 127.0.0.1 by default); --render writes them as PNG files");
  dashboard::declare(state->options, state->settings);
  state->options.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    dashboard::run_dashboard(state->settings);
  });
}

}  // namespace refract::cli
