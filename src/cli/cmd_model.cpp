// `refract model forward | init`: one forward pass over stored inputs; a random model in HF layout.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "model/commands.h"

namespace refract::cli {
namespace {

template <typename Settings>
struct Sub {
  Settings settings;
  Options options;
};

}  // namespace

void add_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", "Qwen2.5-VL model utilities: forward, init");
  cmd->require_subcommand(1);

  auto fwd = std::make_shared<Sub<model::ModelForwardSettings>>();
  auto* f = cmd->add_subcommand("forward",
                                "Run one forward pass on inputs from a safetensors file (input_ids, attention_mask, "
                                "pixel_values, image_grid_thw) and write logits, position_ids, rope_deltas, image_embeds");
  model::declare(fwd->options, fwd->settings);
  fwd->options.add_to(*f);
  f->callback([fwd] {
    fwd->options.parse();
    model::run_model_forward(fwd->settings);
  });

  auto init = std::make_shared<Sub<model::ModelInitSettings>>();
  auto* i = cmd->add_subcommand("init",
                                "Write a randomly initialised model (preset tiny | small) in HF layout, with vocab "
                                "size and special ids from the given tokenizer");
  model::declare(init->options, init->settings);
  init->options.add_to(*i);
  i->callback([init] {
    init->options.parse();
    model::run_model_init(init->settings);
  });
}

}  // namespace refract::cli
