// `refract export`: base model + PEFT LoRA adapter -> one merged HF-layout model directory
// (what peft's merge_and_unload() + save_pretrained() produce), or (--format gguf) the
// language model as a llama.cpp GGUF file (commands/export_gguf.h). Torch-free header.
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
  std::string output;                // hf: directory to write (created; files written atomically);
                                     // gguf: the .gguf file
  std::string format = "hf";         // hf | gguf
  std::string outtype = "f16";       // gguf only: f32 | f16 | q8_0 (convert_hf_to_gguf.py's --outtype)
};
void declare(Options& o, ExportSettings& s);

// hf: loads the base in float32 (the merge W + s*B*A is done in full precision), merges the
// adapter, casts to torch_dtype and writes config.json, model.safetensors,
// generation_config.json and the base's tokenizer / processor files. gguf: run_export_gguf.
void run_export(const ExportSettings& s);

}  // namespace refract::commands
