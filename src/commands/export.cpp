#include "commands/export.h"

#include <filesystem>

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
  o.add("output", &s.output, "output directory for the merged model");
}

void run_export(const ExportSettings& s) {
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
