// `refract preprocess`: one image through Qwen2VLImageProcessor into a .safetensors file
// (pixel_values, image_grid_thw, resized_uint8), for inspection and parity checks.
#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "commands/preprocess.h"

namespace refract::cli {
namespace {

struct PreprocessSettings {
  std::string image;
  std::string output;
  vision::PreprocessConfig processor;
};

struct PreprocessCommand {
  PreprocessSettings settings;
  Options options;
};

}  // namespace

void add_preprocess_command(CLI::App& app) {
  auto state = std::make_shared<PreprocessCommand>();
  auto* cmd = app.add_subcommand(
      "preprocess",
      "Run the Qwen2-VL image processor on one image and write pixel_values, image_grid_thw "
      "and resized_uint8 to a .safetensors file");
  Options& o = state->options;
  PreprocessSettings& s = state->settings;
  o.add("image", &s.image, "input image (PNG, JPEG, BMP, WebP)");
  o.add("output", &s.output, "output .safetensors file (written atomically)");
  commands::declare(o, s.processor);
  o.add_to(*cmd);
  cmd->callback([state] {
    state->options.parse();
    const PreprocessSettings& s = state->settings;
    commands::preprocess_to_safetensors(s.image, s.processor, s.output);
  });
}

}  // namespace refract::cli
