// `refract export`: base model + PEFT LoRA adapter -> one merged HF-layout model directory
// (what peft's merge_and_unload() + save_pretrained() produce). Torch-free header.
#pragma once
#include <cstdint>
#include <string>

namespace refract {
class Options;
}

namespace refract::serve {

struct ExportSettings {
  std::string model;                 // base model directory (HF layout)
  std::string adapter;               // PEFT adapter directory (adapter_config.json + safetensors)
  std::string output;                // directory to write (created; files written atomically)
  std::string torch_dtype = "auto";  // dtype of the written weights: auto (the base's) | float32 | bfloat16 | float16
  std::string device = "cpu";
  int64_t threads = 2;
};
void declare(Options& o, ExportSettings& s);

// Loads the base in float32 (the merge W + s*B*A is done in full precision), merges the
// adapter, casts to torch_dtype and writes config.json, model.safetensors,
// generation_config.json and the base's tokenizer / processor files.
void run_export(const ExportSettings& s);

}  // namespace refract::serve
