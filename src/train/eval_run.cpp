#include "train/eval_run.h"

#include <chrono>
#include <filesystem>
#include <set>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "data/validate.h"
#include "model/lora.h"
#include "model/qwen2_5_vl.h"
#include "rewards/score.h"
#include "text/tokenizer.h"
#include "train/evaluate.h"
#include "train/trainer_common.h"

namespace fs = std::filesystem;

namespace refract::train {

void declare(Options& o, EvalConfig& c) {
  o.add("model_name_or_path", &c.model_name_or_path, "model directory in HF layout");
  o.add("adapter", &c.adapter, "PEFT LoRA adapter directory applied on the model (optional)");
  o.add("task", &c.task, "metrics to compute; auto = the samples' task")
      .choices({"auto", "rec", "count", "ocr", "cls"});
  o.add("per_device_eval_batch_size", &c.per_device_eval_batch_size, "prompts per generation batch");
  o.add("max_new_tokens", &c.max_new_tokens, "generation length cap");
  o.add("coordinate_format", &c.coordinate_format, "rec: how predicted boxes are expressed")
      .choices({"absolute_resized", "normalized_1000", "absolute"});
  o.add("lowercase", &c.lowercase, "ocr: compare case-insensitively");
  o.add("max_samples", &c.max_samples, "evaluate only the first N samples (0 = all)");
  o.add("output_dir", &c.output_dir, "where predictions.jsonl, references.jsonl and eval.json go");
  o.add("threads", &c.threads, "CPU threads for torch");
  o.add("device", &c.device, "cpu | cuda | cuda:N");
  o.add("torch_dtype", &c.torch_dtype, "parameter dtype").choices({"float32", "bfloat16", "float16"});
  declare(o, c.data);
}

nlohmann::json run_eval(const EvalConfig& c) {
  const auto t0 = std::chrono::steady_clock::now();
  REFRACT_CHECK(!c.model_name_or_path.empty()) << "model_name_or_path is required";
  REFRACT_CHECK(c.per_device_eval_batch_size >= 1) << "per_device_eval_batch_size must be >= 1";
  at::set_num_threads(static_cast<int>(c.threads));
  const torch::Device dev = parse_device(c.device);
  auto model = model::load_pretrained(c.model_name_or_path, dev, c.torch_dtype);
  if (!c.adapter.empty()) model::load_lora(*model, c.adapter);
  model->eval();
  const std::string tok_path = c.data.tokenizer_path.empty() ? c.model_name_or_path : c.data.tokenizer_path;
  const text::Tokenizer tok = text::Tokenizer::from_file(tok_path);

  data::DataConfig dc = c.data;
  data::Dataset ds = data::prepare_dataset(dc, &tok);  // reports (or stops on) bad samples
  std::vector<data::Sample>& samples = ds.samples;
  if (c.max_samples > 0 && static_cast<int64_t>(samples.size()) > c.max_samples)
    samples.resize(static_cast<size_t>(c.max_samples));

  std::string task = c.task;
  if (task == "auto") {
    std::set<std::string> tasks;
    for (const auto& s : samples) tasks.insert(s.task);
    REFRACT_CHECK(tasks.size() == 1 && !tasks.begin()->empty())
        << "task: the samples do not name one task (" << tasks.size() << " kinds); set --task";
    task = *tasks.begin();
  }
  REFRACT_CHECK(task == "rec" || task == "count" || task == "ocr" || task == "cls")
      << "task '" << task << "': refract eval computes rec | count | ocr | cls metrics (for COCO "
      << "detection write detections and use `refract score det`)";

  vision::PreprocessConfig pp;
  pp.min_pixels = dc.min_pixels;
  pp.max_pixels = dc.max_pixels;
  const auto& vc = model->config().vision_config;
  pp.patch_size = vc.patch_size;
  pp.merge_size = vc.spatial_merge_size;
  pp.temporal_patch_size = vc.temporal_patch_size;
  const auto greedy = generate_greedy(*model, tok, samples, pp, c.per_device_eval_batch_size, c.max_new_tokens);
  std::string preds, refs;
  for (size_t i = 0; i < samples.size(); ++i) {
    preds += nlohmann::json{{"id", samples[i].id}, {"prediction", greedy[i].completion}}.dump() + "\n";
    nlohmann::json ref = {{"id", samples[i].id}, {"solution", samples[i].solution}};
    if (!greedy[i].images.empty()) {
      const auto& im = greedy[i].images[0];
      ref["width"] = im.width, ref["height"] = im.height;
      ref["resized_width"] = im.resized_width, ref["resized_height"] = im.resized_height;
    }
    refs += ref.dump() + "\n";
  }
  fs::create_directories(c.output_dir);
  const std::string pred_path = c.output_dir + "/predictions.jsonl", ref_path = c.output_dir + "/references.jsonl";
  write_file_atomic(pred_path, preds);
  write_file_atomic(ref_path, refs);
  rewards::ScoreSettings ss;
  ss.coords = c.coordinate_format;
  ss.lowercase = c.lowercase;
  nlohmann::json result = rewards::score_jsonl(task, pred_path, ref_path, ss);
  result["model"] = c.model_name_or_path;
  if (!c.adapter.empty()) result["adapter"] = c.adapter;
  result["rejected_samples"] = ds.num_rejected();
  result["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_file_atomic(c.output_dir + "/eval.json", result.dump(2) + "\n");
  return result;
}

}  // namespace refract::train
