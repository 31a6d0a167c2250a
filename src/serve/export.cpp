#include "serve/export.h"

#include <filesystem>

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/qwen2_5_vl.h"

namespace refract::serve {
namespace fs = std::filesystem;

void declare(Options& o, ExportSettings& s) {
  o.add("model", &s.model, "base model directory (HF layout)");
  o.add("adapter", &s.adapter, "PEFT LoRA adapter directory to merge");
  o.add("output", &s.output, "output directory for the merged model");
  o.add("torch_dtype", &s.torch_dtype, "dtype of the written weights: auto (the base's) | float32 | bfloat16 | float16")
      .choices({"auto", "float32", "bfloat16", "float16"});
  o.add("device", &s.device, "torch device used for the merge");
  o.add("threads", &s.threads, "CPU threads for torch ops");
}

void run_export(const ExportSettings& s) {
  REFRACT_CHECK(!s.model.empty()) << "model: the base model directory is required";
  REFRACT_CHECK(!s.adapter.empty()) << "adapter: the adapter directory is required";
  REFRACT_CHECK(!s.output.empty()) << "output: the output directory is required";
  REFRACT_CHECK(fs::exists(fs::path(s.adapter) / "adapter_config.json"))
      << "adapter: " << s.adapter << " has no adapter_config.json";
  std::error_code ec;
  REFRACT_CHECK(!fs::equivalent(s.model, s.output, ec)) << "output: must differ from model (" << s.model << ")";
  at::set_num_threads(static_cast<int>(s.threads));

  const std::string base_dtype = model::load_config(s.model).torch_dtype;
  const torch::ScalarType out_dtype = model::parse_torch_dtype(s.torch_dtype == "auto" ? base_dtype : s.torch_dtype);
  model::Qwen2_5_VL m = model::load_pretrained(s.model, torch::Device(s.device), "float32");
  model::load_lora(*m, s.adapter);
  model::merge_lora(*m);
  REFRACT_CHECK(!model::has_lora(*m)) << "adapter layers remain after merge_lora";
  m->to(out_dtype);
  model::save_pretrained(*m, s.output);
  LOG_INFO("exported {} + {} -> {} ({})", s.model, s.adapter, s.output, model::torch_dtype_name(out_dtype));
}

}  // namespace refract::serve
