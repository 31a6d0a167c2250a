// `refract serve`: an OpenAI-compatible chat completions server (GET /health, GET /v1/models,
// POST /v1/chat/completions with text and image_url parts). Binds 127.0.0.1 unless told.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "serve/serve.h"

namespace refract::cli {
namespace {
struct ServeCommand {
  serve::ServeSettings settings;
  Options options;
};
}  // namespace

void add_serve_command(CLI::App& app) {
  auto state = std::make_shared<ServeCommand>();
  auto* cmd = app.add_subcommand(
      "serve",
      "Serve a model over an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models, "
      "GET /health)");
  serve::declare(state->options, state->settings);
  state->options.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    serve::run_serve(state->settings);
  });
}

}  // namespace refract::cli
