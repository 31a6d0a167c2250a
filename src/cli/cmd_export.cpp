// `refract export`: merge a PEFT LoRA adapter into its base model and write an HF-layout model,
// or write the language model as a llama.cpp GGUF file (--format gguf).
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/export.h"

namespace refract::cli {
namespace {
struct ExportCommand {
  commands::ExportSettings settings;
  Options options;
};
}  // namespace

void add_export_command(CLI::App& app) {
  auto state = std::make_shared<ExportCommand>();
  auto* cmd = app.add_subcommand(
      "export",
      "Merge a LoRA adapter into its base model and write the merged model (HF layout), or write the "
      "language model (+ merged adapter) as a llama.cpp GGUF file (--format gguf --outtype f32|f16|q8_0)");
  commands::declare(state->options, state->settings);
  state->options.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    commands::run_export(state->settings);
  });
}

}  // namespace refract::cli
