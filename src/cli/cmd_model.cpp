// `refract model forward | init | pretrain_vision`: one forward pass over stored inputs; a random
// model in HF layout; the demo's dense vision pre-training.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/model.h"
#include "commands/pretrain_vision.h"

namespace refract::cli {
namespace {

template <typename Settings>
struct Sub {
  Settings settings;
  Options options;
};

}  // namespace

void add_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", "Qwen2.5-VL model utilities: forward, init, pretrain_vision");
  cmd->require_subcommand(1);

  auto fwd = std::make_shared<Sub<commands::ModelForwardSettings>>();
  auto* f = cmd->add_subcommand("forward",
                                "Run one forward pass on inputs from a safetensors file (input_ids, attention_mask, "
                                "pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, second_per_grid_ts) and write logits, "
                                "position_ids, rope_deltas, image_embeds, video_embeds");
  commands::declare(fwd->options, fwd->settings);
  fwd->options.add_to(*f);
  f->callback([fwd] {
    fwd->options.parse();
    commands::run_model_forward(fwd->settings);
  });

  auto init = std::make_shared<Sub<commands::ModelInitSettings>>();
  auto* i = cmd->add_subcommand("init",
                                "Write a randomly initialised model (preset tiny | small, model_type qwen2_5_vl | qwen2_vl) in HF layout, with vocab "
                                "size and special ids from the given tokenizer");
  commands::declare(init->options, init->settings);
  init->options.add_to(*i);
  i->callback([init] {
    init->options.parse();
    commands::run_model_init(init->settings);
  });

  auto pre = std::make_shared<Sub<commands::VisionPretrainConfig>>();
  auto* v = cmd->add_subcommand("pretrain_vision",
                                "Dense vision pre-training on the shapes world (the demo's stand-in for a "
                                "pretrained ViT): every image token learns the shape, colour, size and box covering it");
  commands::declare(pre->options, pre->settings);
  pre->options.add_to(*v);
  v->callback([pre] {
    pre->options.parse();
    commands::run_vision_pretrain(pre->settings);
  });
}

}  // namespace refract::cli
