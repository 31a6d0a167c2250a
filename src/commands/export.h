// `refract export`: base model + PEFT LoRA adapter -> one merged HF-layout model directory
// (what peft's merge_and_unload() + save_pretrained() produce). Torch-free header.
#pragma once
#include <cstdint>
#include <string>

#include "model/model_settings.h"

namespace refract {
class Options;
}

namespace refract::commands {

// The model settings (model_name_or_path = the base, adapter, torch_dtype = the dtype of the
// written weights, auto = the base's) and the output directory.
struct ExportSettings : model::ModelSettings {
  std::string output;                // directory to write (created; files written atomically)
};
void declare(Options& o, ExportSettings& s);

// Loads the base in float32 (the merge W + s*B*A is done in full precision), merges the
// adapter, casts to torch_dtype and writes config.json, model.safetensors,
// generation_config.json and the base's tokenizer / processor files.
void run_export(const ExportSettings& s);

}  // namespace refract::commands
