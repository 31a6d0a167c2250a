#include "commands/export.h"

#include <filesystem>

#include "commands/export_gguf.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/open_model.h"

namespace refract::commands {
namespace fs = std::filesystem;

void declare(Options& o, ExportSettings& s) {
  model::declare(o, static_cast<model::ModelSettings&>(s));
  o.add("output", &s.output, "output: the merged model's directory (hf), the .gguf file (gguf)");
  o.add("format", &s.format, "hf: merged HF-layout model; gguf: llama.cpp file of the language model")
      .choices({"hf", "gguf"});
  o.add("outtype", &s.outtype, "gguf: type of the 2-D weights (norms and biases stay f32)")
      .choices({"f32", "f16", "q8_0"});
}

void run_export(const ExportSettings& s) {
  if (s.format == "gguf") return run_export_gguf(s);
  REFRACT_CHECK(s.format == "hf") << "format: '" << s.format << "' is not hf or gguf";
  REFRACT_CHECK(!s.adapter.empty()) << "adapter: the adapter directory is required";
  REFRACT_CHECK(!s.output.empty()) << "output: the output directory is required";
  std::error_code ec;
  REFRACT_CHECK(!fs::equivalent(s.model_name_or_path, s.output, ec))
      << "output: must differ from model_name_or_path (" << s.model_name_or_path << ")";
  const std::string base_dtype = model::load_config(s.model_name_or_path).torch_dtype;
  const torch::ScalarType out_dtype = model::parse_torch_dtype(s.torch_dtype == "auto" ? base_dtype : s.torch_dtype);
  // The merge W + s*B*A is computed in float32 whatever the written dtype.
  model::ModelSettings load = s;
  load.torch_dtype = "float32";
  model::OpenedModel m = model::open_model(load, model::AdapterUse::kMerge);
  REFRACT_CHECK(!model::has_lora(*m.model)) << "adapter layers remain after merge_lora";
  m.model->to(out_dtype);
  model::save_pretrained(*m.model, s.output);
  LOG_INFO("exported {} + {} -> {} ({})", s.model_name_or_path, s.adapter, s.output, model::torch_dtype_name(out_dtype));
}

}  // namespace refract::commands
