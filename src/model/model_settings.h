// The runtime settings every command that opens a model shares (train, eval, infer, serve,
// export, model forward), declared once with one name each. No torch: the CLI includes this.
#pragma once
#include <cstdint>
#include <string>

namespace refract {
class Options;
}

namespace refract::model {

struct ModelSettings {
  std::string model_name_or_path;        // HF-layout directory (TRL's name; `model` is an alias)
  std::string adapter;                   // PEFT LoRA adapter directory applied on top ("" = none);
                                         // training: the adapter to continue (needs use_peft)
  std::string device = "cpu";            // cpu | cuda | cuda:N
  std::string torch_dtype = "float32";   // storage dtype of the weights: auto = config.json's
  int64_t threads = 2;                   // CPU threads for torch (libtorch reports 1 here)
  // Image processor bounds; 0 = the model's preprocessor_config.json, else the reference's
  // defaults (3136 / 12845056), so one model directory is preprocessed alike everywhere.
  int64_t min_pixels = 0;
  int64_t max_pixels = 0;
};

void declare(Options& o, ModelSettings& s);

// Fails naming the key when a setting is out of range (threads, pixels, missing model).
void validate(const ModelSettings& s);

}  // namespace refract::model
