#include "commands/eval.h"

#include <chrono>
#include <filesystem>
#include <set>

#include "common/atomic_file.h"
#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "data/validate.h"
#include "model/open_model.h"
#include "rewards/score.h"
#include "text/tokenizer.h"
#include "train/evaluate.h"

namespace fs = std::filesystem;

namespace refract::commands {

void declare(Options& o, EvalConfig& c) {
  model::declare(o, static_cast<model::ModelSettings&>(c));
  o.add("task", &c.task, "metrics to compute; auto = the samples' task")
      .choices({"auto", "rec", "count", "ocr", "cls"});
  o.add("per_device_eval_batch_size", &c.per_device_eval_batch_size, "prompts per generation batch");
  o.add("max_new_tokens", &c.max_new_tokens, "generation length cap");
  o.add("coordinate_format", &c.coordinate_format, "rec: how predicted boxes are expressed")
      .choices({"absolute_resized", "normalized_1000", "absolute"});
  o.add("lowercase", &c.lowercase, "ocr: compare case-insensitively");
  o.add("max_samples", &c.max_samples, "evaluate only the first N samples (0 = all)");
  o.add("output_dir", &c.output_dir, "where predictions.jsonl, references.jsonl and eval.json go");
  declare(o, c.data);
}

nlohmann::json run_eval(const EvalConfig& c) {
  const auto t0 = std::chrono::steady_clock::now();
  REFRACT_CHECK(c.per_device_eval_batch_size >= 1) << "per_device_eval_batch_size must be >= 1";
  model::OpenedModel m = model::open_model(c);
  const text::Tokenizer& tok = m.tok();

  // Validation counts image tokens with the processor the model will use.
  data::DataConfig dc = c.data;
  dc.min_pixels = m.processor.min_pixels;
  dc.max_pixels = m.processor.max_pixels;
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

  const auto greedy = train::generate_greedy(m, samples, c.per_device_eval_batch_size, c.max_new_tokens);
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

}  // namespace refract::commands
