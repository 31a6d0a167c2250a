#include "model/model_settings.h"

#include "common/check.h"
#include "common/options.h"

namespace refract::model {

void declare(Options& o, ModelSettings& s) {
  o.add("model_name_or_path", &s.model_name_or_path,
        "model directory in HF layout (config.json, *.safetensors, tokenizer.json)")
      .alias("model");
  o.add("adapter", &s.adapter, "PEFT LoRA adapter directory applied on the model (optional)");
  o.add("device", &s.device, "cpu | cuda | cuda:N");
  o.add("torch_dtype", &s.torch_dtype, "storage dtype of the loaded weights (auto = config.json's)")
      .choices({"auto", "float32", "bfloat16", "float16"});
  o.add("threads", &s.threads, "CPU threads for torch");
  o.add("min_pixels", &s.min_pixels,
        "image processor min_pixels (0 = the model's preprocessor_config.json, else 3136)");
  o.add("max_pixels", &s.max_pixels,
        "image processor max_pixels (0 = the model's preprocessor_config.json, else 12845056)");
}

void validate(const ModelSettings& s) {
  REFRACT_CHECK(!s.model_name_or_path.empty()) << "model_name_or_path is required (a model directory)";
  REFRACT_CHECK(s.threads >= 1) << "threads must be >= 1, got " << s.threads;
  REFRACT_CHECK(s.min_pixels >= 0) << "min_pixels must be >= 0, got " << s.min_pixels;
  REFRACT_CHECK(s.max_pixels >= 0) << "max_pixels must be >= 0, got " << s.max_pixels;
  REFRACT_CHECK(s.min_pixels == 0 || s.max_pixels == 0 || s.min_pixels <= s.max_pixels)
      << "min_pixels (" << s.min_pixels << ") must not exceed max_pixels (" << s.max_pixels << ")";
}

}  // namespace refract::model
