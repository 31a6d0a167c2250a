// `refract infer`: generate a completion for one prompt (and images) and print it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/infer.h"

namespace refract::cli {
namespace {

struct InferCommand {
  commands::InferSettings settings;
  Options options;
};

}  // namespace

void add_infer_command(CLI::App& app) {
  auto state = std::make_shared<InferCommand>();
  auto* cmd = app.add_subcommand(
      "infer",
      "Generate a completion for --prompt (and --image / --video files) with a model directory and an "
      "optional LoRA --adapter; prints the completion. Greedy unless --do_sample.");
  commands::declare(state->options, state->settings);
  state->options.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    auto completions = commands::run_infer(state->settings);
    for (size_t i = 0; i < completions.size(); ++i) {
      if (completions.size() > 1)
        std::printf("--- completion %zu (%s, %ld tokens)\n", i, completions[i].finish_reason.c_str(),
                    static_cast<long>(completions[i].num_tokens));
      std::printf("%s\n", completions[i].text.c_str());
    }
    std::fflush(stdout);
  });
}

}  // namespace refract::cli
