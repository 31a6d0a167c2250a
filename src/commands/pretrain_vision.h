// Dense vision pre-training on the shapes world: the demo's stand-in for Qwen's pretrained ViT.
//
// A randomly initialised tiny model cannot learn localisation from REC answers alone in
// minutes (a prototype reached 0-5 % Acc@0.5 after 5 min of SFT). So before SFT, every merged
// image token (one 28x28 cell of the grid world) is trained to say what covers it: shape,
// colour, size class, the box of that object (as numbers and as its 12 decimal digits) and
// the cell's own position. Afterwards the vision
// tower holds these features and SFT (with freeze_vision_modules) only has to teach the
// language model to read them out. Scenes come straight from the generator (in-domain specs
// only: held-out colour-shape pairs are never shown), so every object is labelled.
// No torch types (the CLI includes this).
#pragma once
#include <cstdint>
#include <string>

#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::commands {

// The model settings (model_name_or_path: e.g. `model init --preset tiny`, device, threads).
struct VisionPretrainConfig : model::ModelSettings {
  std::string output_dir;           // the model with its trained vision tower (HF layout)
  int64_t max_steps = 2000;
  double max_seconds = 120;         // > 0: stop after this wall time
  int64_t per_device_train_batch_size = 16;  // images per step
  double learning_rate = 1e-3;
  int64_t logging_steps = 50;
  int64_t seed = 0;
};
void declare(Options& o, VisionPretrainConfig& c);

struct VisionPretrainResult {
  int64_t steps = 0;
  double seconds = 0;
  double final_loss = 0;
  double shape_accuracy = 0;   // on object cells of the last logging window
  double colour_accuracy = 0;
  double box_mae_pixels = 0;   // mean |box error| in pixels on object cells
  double box_digits_accuracy = 0;  // object cells whose 12 box digits are all right
};

VisionPretrainResult run_vision_pretrain(const VisionPretrainConfig& c);

}  // namespace refract::commands
